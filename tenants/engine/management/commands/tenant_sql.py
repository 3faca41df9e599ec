"""`manage.py tenant_sql lint|status|plan|apply|validate|repair`: thin callers of the engine's services.

Exit status: 0 when everything is fine, 1 when something failed or drifted (or lint found problems),
2 for a usage error (bad options, an invalid or unknown schema name), 3 when nothing failed but some schemas
waited longer than their lock_timeout (retry later).
"""

from __future__ import annotations

import getpass
import socket
import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from tqdm import tqdm

from ghostcrm.audit.services import Actor
from ghostcrm.core.commands import ServiceCommand
from ghostcrm.core.errors import ValidationError
from ghostcrm.organizations.selectors import organization_find
from tenants.engine import selectors, services
from tenants.engine.lint import templates_lint
from tenants.engine.templates import templates_directory


def _usage(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def _versions(versions: list[int]) -> str:
    return ",".join(f"{v:03d}" for v in versions) or "-"


class Command(ServiceCommand):
    help = "Lint, inspect and apply the tenant schema SQL templates (migrations_sql/client-provisioning)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        def with_dir(p: ArgumentParser) -> ArgumentParser:
            p.add_argument("--dir", type=Path, default=None, help="template directory (default: the project's)")
            return p

        lint = with_dir(sub.add_parser("lint", help="check file names, numbering, SQL and portability rules"))
        lint.add_argument("--json", action="store_true")

        status = with_dir(sub.add_parser("status", help="applied, pending, drift and last failure per schema"))
        which = status.add_mutually_exclusive_group()
        which.add_argument("--schema")
        which.add_argument("--all", action="store_true", help="every registered tenant (the default)")
        status.add_argument("--json", action="store_true")

        plan = with_dir(sub.add_parser("plan", help="what apply would run in a schema, with the SQL"))
        plan.add_argument("--schema", required=True)
        plan.add_argument("--json", action="store_true")

        apply = with_dir(sub.add_parser("apply", help="apply pending templates"))
        targets = apply.add_mutually_exclusive_group(required=True)
        targets.add_argument("--schema")
        targets.add_argument("--tenants", help="comma-separated schema names")
        targets.add_argument("--all", action="store_true", help="every registered tenant")
        apply.add_argument("--jobs", type=int, default=1, help="schemas in parallel, one connection each")
        apply.add_argument("--json", action="store_true")
        apply.add_argument(
            "--create-schema",
            action="store_true",
            help="create the schema and its roles first, as provisioning does (for a scratch schema)",
        )

        validate = with_dir(sub.add_parser("validate", help="applied files still match the files on disk"))
        which = validate.add_mutually_exclusive_group()
        which.add_argument("--schema")
        which.add_argument("--all", action="store_true", help="every registered tenant (the default)")
        validate.add_argument("--json", action="store_true")

        repair = with_dir(sub.add_parser("repair", help="clear failure records and re-checksum (audited)"))
        repair.add_argument("--schema", required=True)
        repair.add_argument("--json", action="store_true")

    def run(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"do_{options['subcommand']}")
        handler(options)

    # --- subcommands ---------------------------------------------------------------------------------

    def _schema(self, name: str) -> str:
        # An organisation's slug or id names its schema; anything else is taken as a schema name.
        organization = organization_find(identifier=name)
        try:
            return services.schema_name_check(organization.schema_name if organization else name)
        except ValidationError as exc:
            raise _usage(exc.message) from None

    def do_lint(self, options: dict[str, Any]) -> None:
        result = templates_lint(templates_directory(options["dir"]))
        if options["json"]:
            self.write_json(
                {
                    "directory": str(result.directory),
                    "templates": [t.filename for t in result.templates],
                    "problems": [p.as_dict() for p in result.problems],
                }
            )
        else:
            for problem in result.problems:
                self.stdout.write(str(problem))
        if result.problems:
            raise CommandError(f"{len(result.problems)} problem(s) in {result.directory}.", returncode=1)
        if not options["json"]:
            self.stdout.write(f"{len(result.templates)} template(s) in {result.directory}: no problems.")

    def do_status(self, options: dict[str, Any]) -> None:
        schemas = [self._schema(options["schema"])] if options["schema"] else None
        statuses = selectors.schemas_status(schemas=schemas, directory=options["dir"])
        if options["json"]:
            self.write_json([s.as_dict() for s in statuses])
            return
        if not statuses:
            self.stdout.write("No registered tenants.")
            return
        for s in statuses:
            line = f"{s.schema}: {s.state}  applied {_versions(s.applied)}  pending {_versions(s.pending)}"
            if s.drift:
                line += f"  drift {_versions(s.drift)}"
            if s.unknown:
                line += f"  unknown {_versions(s.unknown)}"
            if s.missing:
                line += f"  missing {_versions(s.missing)}"
            if not s.registered:
                line += "  (not a registered tenant)"
            self.stdout.write(line)
            if s.last_failure:
                f = s.last_failure
                self.stdout.write(f"  last failure: {f['filename']} line {f['line']}: {f['error'].splitlines()[0]}")
        counts: dict[str, int] = {}
        for s in statuses:
            counts[s.state] = counts.get(s.state, 0) + 1
        self.stdout.write(f"{len(statuses)} schema(s): " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))

    def do_plan(self, options: dict[str, Any]) -> None:
        schema = self._schema(options["schema"])
        planned = selectors.schema_plan(schema=schema, directory=options["dir"])
        if options["json"]:
            self.write_json({"schema": schema, "files": [p.as_dict() for p in planned]})
            return
        if not planned:
            self.stdout.write(f"{schema}: up to date, nothing to apply.")
            return
        for p in planned:
            mode = "one transaction" if p.transaction else "no transaction, statement by statement"
            self.stdout.write(f"-- {p.filename} (version {p.version:03d}, {mode}, sha256 {p.checksum[:12]})")
            self.stdout.write(p.sql.rstrip() + "\n")
        self.stdout.write(f"-- {len(planned)} file(s) would be applied to {schema}.")

    def do_apply(self, options: dict[str, Any]) -> None:
        if options["jobs"] < 1:
            raise _usage("--jobs must be at least 1.")
        schemas = self._apply_schemas(options)
        actor = Actor.system(f"tenant_sql:{getpass.getuser()}")
        applied_by = f"{getpass.getuser()}@{socket.gethostname()}"[:150]
        try:
            targets = services.rollout_targets(
                schemas=schemas, create_schema=options["create_schema"], directory=options["dir"], actor=actor
            )
        except services.UnregisteredSchemas as exc:
            raise _usage(exc.message) from exc
        as_json = options["json"]
        bar = tqdm(total=len(targets), unit="schema", file=sys.stderr) if not as_json and self.stdout.isatty() else None

        def report(result: services.ApplyResult) -> None:
            if bar is not None:
                bar.update(1)
                if not result.ok:
                    bar.write(self._result_line(result), file=sys.stderr)
            elif not as_json:
                self.stdout.write(self._result_line(result))

        try:
            rollout = services.schemas_apply(
                targets=targets, directory=options["dir"], jobs=options["jobs"], applied_by=applied_by,
                on_result=report, actor=actor,
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        summary = rollout.summary()
        if as_json:
            self.write_json(rollout.as_dict())
        else:
            self.stdout.write(
                f"{summary['schemas']} schema(s) in {rollout.duration_ms / 1000:.2f} s with {rollout.jobs} job(s): "
                f"{summary['applied']} applied ({summary['files_applied']} file(s)), "
                f"{summary['up_to_date']} up to date, "
                f"{summary['failed']} failed, {summary['lock_timeout']} lock timeout(s)."
            )
        if summary["failed"]:
            raise CommandError(f"{summary['failed']} schema(s) failed; re-run apply to resume.", returncode=1)
        if summary["lock_timeout"]:
            raise CommandError(
                f"{summary['lock_timeout']} schema(s) waited longer than their lock_timeout; re-run apply later.",
                returncode=3,
            )

    def _apply_schemas(self, options: dict[str, Any]) -> list[str] | None:
        """The schemas named by --schema or --tenants; None for --all."""
        if options["create_schema"] and options["all"]:
            raise _usage("--create-schema is for scratch schemas: use it with --schema or --tenants, not --all.")
        if options["all"]:
            return None
        raw = [options["schema"]] if options["schema"] else [s.strip() for s in options["tenants"].split(",")]
        schemas = [self._schema(s) for s in raw if s]
        if not schemas:
            raise _usage("--tenants needs at least one schema name.")
        return schemas

    @staticmethod
    def _result_line(result: services.ApplyResult) -> str:
        if result.failed is not None:
            f = result.failed
            where = f" line {f.line}" if f.line else ""
            return f"{result.schema}: FAILED {f.filename}{where}: {f.error.splitlines()[0]}"
        if result.error:
            return f"{result.schema}: FAILED: {result.error}"
        if result.lock_timeout is not None:
            t = result.lock_timeout
            holder = (
                f", held by pid {t.blocker_pid} ({t.blocker_application or 'no application name'}) for "
                f"{t.blocker_age_s} s"
                if t.blocker_pid
                else ""
            )
            return f"{result.schema}: LOCK TIMEOUT {t.filename} after {t.lock_timeout}{holder}; retry later"
        if result.applied:
            files = ", ".join(f"{a.filename} ({a.duration_ms} ms)" for a in result.applied)
            return f"{result.schema}: applied {files}"
        return f"{result.schema}: up to date"

    def do_validate(self, options: dict[str, Any]) -> None:
        schemas = [self._schema(options["schema"])] if options["schema"] else None
        statuses = selectors.schemas_status(schemas=schemas, directory=options["dir"])
        invalid = [s for s in statuses if not s.valid]
        if options["json"]:
            self.write_json(
                {
                    "schemas": len(statuses),
                    "invalid": [
                        {"schema": s.schema, "drift": s.drift, "unknown": s.unknown, "missing": s.missing}
                        for s in invalid
                    ],
                }
            )
        else:
            for s in invalid:
                problems = []
                if s.drift:
                    problems.append(f"checksum drift in {_versions(s.drift)}")
                if s.unknown:
                    problems.append(f"applied but not on disk: {_versions(s.unknown)}")
                if s.missing:
                    problems.append(f"skipped (a later version is applied): {_versions(s.missing)}")
                self.stdout.write(f"{s.schema}: " + "; ".join(problems))
        if invalid:
            raise CommandError(f"{len(invalid)} of {len(statuses)} schema(s) do not match the files.", returncode=1)
        if not options["json"]:
            self.stdout.write(f"{len(statuses)} schema(s) match the files on disk.")

    def do_repair(self, options: dict[str, Any]) -> None:
        schema = self._schema(options["schema"])
        result = services.schema_repair(
            schema=schema, directory=options["dir"], actor=Actor.system(f"tenant_sql:{getpass.getuser()}")
        )
        if options["json"]:
            self.write_json(result.as_dict())
            return
        self.stdout.write(
            f"{schema}: {len(result.failures_cleared)} failure record(s) cleared, "
            f"{len(result.checksums_updated)} checksum(s) updated."
        )
