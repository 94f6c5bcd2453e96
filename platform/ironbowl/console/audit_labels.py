"""The audit log's codes in people's words: an object type ("scheduling.station") by its model's
name ("Station"), an action ("station.grant_operator") as what was done to what ("Station:
operator granted"). The codes stay the filters' values (the API's); a code this module does not
know is shown as readable words rather than not at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# What an action's verb (the part after the dot) did, for the verbs the domain records.
VERBS: dict[str, Any] = {
    "create": gettext_lazy("created"),
    "update": gettext_lazy("changed"),
    "delete": gettext_lazy("deleted"),
    "import": gettext_lazy("imported"),
    "accept": gettext_lazy("accepted"),
    "revoke": gettext_lazy("revoked"),
    "retire": gettext_lazy("retired"),
    "publish": gettext_lazy("published"),
    "unpublish": gettext_lazy("unpublished"),
    "hire": gettext_lazy("hired"),
    "upgrade": gettext_lazy("moved to a newer version"),
    "activate": gettext_lazy("activated"),
    "suspend": gettext_lazy("suspended"),
    "resume": gettext_lazy("resumed"),
    "terminate": gettext_lazy("terminated"),
    "attach_knowledge": gettext_lazy("knowledge attached"),
    "detach_knowledge": gettext_lazy("knowledge detached"),
    "complete": gettext_lazy("completed"),
    "start": gettext_lazy("started"),
    "start_early": gettext_lazy("started early"),
    "succeed": gettext_lazy("succeeded"),
    "fail": gettext_lazy("failed"),
    "cancel": gettext_lazy("cancelled"),
    "end": gettext_lazy("ended"),
    "stop": gettext_lazy("stopped"),
    "take_over": gettext_lazy("taken over"),
    "hand_back": gettext_lazy("handed back"),
    "at_risk": gettext_lazy("marked at risk"),
    "submit": gettext_lazy("submitted"),
    "release": gettext_lazy("released"),
    "drain": gettext_lazy("drained"),
    "enforce": gettext_lazy("enforced"),
    "purge": gettext_lazy("purged"),
    "grant_operator": gettext_lazy("operator granted"),
    "revoke_operator": gettext_lazy("operator revoked"),
    "rotate_widget_key": gettext_lazy("widget key replaced"),
    "set_budget": gettext_lazy("budget set"),
    "change_plan": gettext_lazy("plan changed"),
    "close_statement": gettext_lazy("statement closed"),
    "refund": gettext_lazy("refunded"),
    "paid": gettext_lazy("paid"),
}


def _words(code: str) -> str:
    return code.replace("_", " ")


def object_type_label(object_type: str) -> str:
    """A model's name for its label ("scheduling.station": "Station")."""
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return object_type
    return str(capfirst(model._meta.verbose_name))


def action_label(action: str, object_type: str | None = None) -> str:
    """What an action did to what: the object named by its type's model when known."""
    subject, _dot, verb = action.partition(".")
    if not verb:
        return action
    thing = object_type_label(object_type) if object_type else ""
    if not thing or thing == object_type:
        thing = capfirst(_words(subject))
    done = VERBS.get(verb, _words(verb))
    return _("%(object)s: %(verb)s") % {"object": thing, "verb": done}


def action_choices(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Filter choices for the actions of (action, object type) pairs: the code as the value, the
    words as the label, sorted by the words."""
    types: dict[str, str] = {}
    for action, object_type in sorted(pairs):
        types.setdefault(action, object_type)
    return sorted(
        ((action, action_label(action, types[action])) for action in types),
        key=lambda choice: (choice[1], choice[0]),
    )


def object_type_choices(object_types: Iterable[str]) -> list[tuple[str, str]]:
    """Filter choices for object types: the label as the value, the model's name as the words."""
    return sorted(
        ((code, object_type_label(code)) for code in set(object_types)),
        key=lambda choice: (choice[1], choice[0]),
    )
