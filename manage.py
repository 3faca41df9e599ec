#!/usr/bin/env python
"""GhostCRM control plane: Django's command-line utility."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ghostcrm.settings")
    from ghostcrm.core.startup import run_command_line

    run_command_line(sys.argv)


if __name__ == "__main__":
    main()
