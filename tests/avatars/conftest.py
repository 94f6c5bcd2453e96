"""Fixtures of the avatars tests."""

from tests.avatars.building import build_pool  # noqa: F401  (fixture)
