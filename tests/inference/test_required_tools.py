"""The media tests' tools (ffprobe): a machine without one skips those tests, CI fails them.

Real: `tests.support.require_tool` with pytest's own skip and fail outcomes. Simulated: the
missing tool (a command name that exists nowhere) and the CI environment variable.
"""

from __future__ import annotations

import pytest

from tests.support import require_tool

MISSING = "ironbowl-no-such-tool"


def test_a_missing_tool_skips_the_test_on_a_developers_machine(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package ffmpeg"):
        require_tool(MISSING, "ffmpeg")


def test_a_missing_tool_fails_the_test_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install it"):
        require_tool(MISSING, "ffmpeg")


def test_a_tool_that_is_there_lets_the_test_run(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require_tool("python3", "python3")
