"""`send_after_commit`: the signal goes out only once the change commits, and a receiver that
fails is logged without stopping the others. Real: Django's signals and on-commit hooks."""

from __future__ import annotations

import pytest
import structlog
from django.db import transaction
from django.dispatch import Signal

from tenants.signals import send_after_commit

pytestmark = pytest.mark.django_db(transaction=True)


def test_sent_after_commit_and_a_failing_receiver_does_not_stop_the_others():
    signal = Signal()
    heard: list[dict] = []

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    def listening(sender, **kwargs):
        heard.append(kwargs)

    signal.connect(broken, weak=False)
    signal.connect(listening, weak=False)
    with structlog.testing.capture_logs() as logs, transaction.atomic():
        send_after_commit(signal, object, "thing_receiver_failed", thing_id=7, state="on")
        assert heard == []  # not before the commit
    assert heard == [{"signal": signal, "thing_id": 7, "state": "on"}]
    (failure,) = [entry for entry in logs if entry["event"] == "thing_receiver_failed"]
    assert failure["thing_id"] == "7" and "broken" in failure["receiver"]


def test_nothing_is_sent_when_the_change_is_rolled_back():
    signal = Signal()
    heard: list[dict] = []
    signal.connect(lambda sender, **kwargs: heard.append(kwargs), weak=False)
    with pytest.raises(ValueError), transaction.atomic():
        send_after_commit(signal, object, "thing_receiver_failed", thing_id=1)
        raise ValueError("rolled back")
    assert heard == []
