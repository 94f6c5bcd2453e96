"""Template tags of the talent market's rendered sample (`ironbowl.console.pages.samples`)."""

from __future__ import annotations

from typing import Any

from django import template

from ironbowl.console.pages.samples import Sample, preview_sample

register = template.Library()


@register.simple_tag(takes_context=True)
def sample_for_preview(context: Any) -> Sample:
    """The sample part of the preview being rendered: `{% sample_for_preview as sample %}`."""
    return preview_sample(context)
