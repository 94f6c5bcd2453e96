#!/usr/bin/env python
"""Django's command-line utility for Ironbowl."""

import os
import sys
from pathlib import Path

# platform/ is a source folder, not a package: it must never shadow the standard library's
# `platform` module (see docs/architecture.md), so it is put on the path instead.
sys.path.insert(0, str(Path(__file__).resolve().parent / "platform"))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ironbowl.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
