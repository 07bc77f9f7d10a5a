#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if sys.argv[1:2] == ["runprobe"]:
        # A probe needs no database, SECRET_KEY or e-mail settings (config/settings.py, IS_PROBE).
        os.environ["TCM_PROCESS"] = "probe"
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
