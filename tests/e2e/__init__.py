"""Browser tests: the console in Chromium, driven by Playwright (see conftest.py)."""
