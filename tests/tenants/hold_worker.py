"""A provisioning worker for fault tests: ``python -m tests.tenants.hold_worker EVENT:STEP FOLDER [--serve]``.

It runs the ``provisioning`` queue once (burst, one process; with ``--serve``, until stopped, with RQ's
scheduler so retries run) with a step hook that, at ``EVENT`` ("started" or
"finished") of ``STEP``, writes its pid to ``FOLDER/reached`` and waits until ``FOLDER/release`` exists (or
two minutes pass), so the test can kill it there. Production code has no pause point of its own.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import django

# The app registry must be ready before the project's modules load their models.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ghostcrm.settings_test")
django.setup()

from django.core.management import call_command  # noqa: E402

from ghostcrm.organizations.models import Organization  # noqa: E402
from tenants.provisioning import steps  # noqa: E402


def hold_at(event: str, step: str, folder: Path) -> steps.StepHook:
    def hook(seen_event: str, seen_step: str, organization: Organization) -> None:
        if (seen_event, seen_step) != (event, step):
            return
        (folder / "reached").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not (folder / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    return hook


def main() -> None:
    where, folder = sys.argv[1], Path(sys.argv[2])
    event, _, step = where.partition(":")
    steps.step_hooks.append(hold_at(event, step, folder))
    if "--serve" in sys.argv[3:]:
        call_command("rqworker", "provisioning", with_scheduler=True, worker_class="rq.SimpleWorker")
    else:
        call_command("rqworker", "provisioning", burst=True, worker_class="rq.SimpleWorker")


if __name__ == "__main__":
    main()
