"""What applying templates reports: per file, per schema, per run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ghostcrm.core.errors import ValidationError


@dataclass(frozen=True)
class ApplyTarget:
    schema: str
    tenant_id: str


@dataclass(frozen=True)
class AppliedFile:
    version: int
    filename: str
    duration_ms: int


@dataclass(frozen=True)
class FailedFile:
    version: int
    filename: str
    sqlstate: str
    error: str
    statement: str
    line: int | None


@dataclass(frozen=True)
class LockTimeout:
    """A file that waited longer than its lock_timeout: retried later, not a failure (nothing recorded)."""

    version: int
    filename: str
    lock_timeout: str
    blocker_pid: int | None = None
    blocker_application: str = ""
    blocker_age_s: float | None = None
    blocker_query: str = ""


@dataclass
class ApplyResult:
    schema: str
    applied: list[AppliedFile] = field(default_factory=list)
    already_applied: int = 0
    failed: FailedFile | None = None
    error: str = ""  # a failure that is not a template's (missing schema, drift, lost connection)
    transient: bool = False
    duration_ms: int = 0
    lock_timeout: LockTimeout | None = None

    @property
    def status(self) -> str:
        if self.failed is not None or self.error:
            return "failed"
        if self.lock_timeout is not None:
            return "lock_timeout"
        return "applied" if self.applied else "up_to_date"

    @property
    def ok(self) -> bool:
        return self.status in {"applied", "up_to_date"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "status": self.status,
            "applied": [asdict(a) for a in self.applied],
            "already_applied": self.already_applied,
            "failed": asdict(self.failed) if self.failed else None,
            "error": self.error or None,
            "transient": self.transient,
            "lock_timeout": asdict(self.lock_timeout) if self.lock_timeout else None,
            "duration_ms": self.duration_ms,
        }


@dataclass
class RolloutResult:
    directory: str
    jobs: int
    results: list[ApplyResult]
    duration_ms: int

    @property
    def failed(self) -> list[ApplyResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def lock_timeouts(self) -> list[ApplyResult]:
        return [r for r in self.results if r.status == "lock_timeout"]

    def summary(self) -> dict[str, int]:
        return {
            "schemas": len(self.results),
            "applied": sum(1 for r in self.results if r.status == "applied"),
            "up_to_date": sum(1 for r in self.results if r.status == "up_to_date"),
            "failed": len(self.failed),
            "lock_timeout": len(self.lock_timeouts),
            "files_applied": sum(len(r.applied) for r in self.results),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "jobs": self.jobs,
            "duration_ms": self.duration_ms,
            "summary": self.summary(),
            "schemas": [r.as_dict() for r in self.results],
        }


class TemplateApplyError(ValidationError):
    """A template file failed in a schema; the failure is recorded in the ledger. Permanent until fixed."""

    code = "template_apply_failed"

    def __init__(self, message: str, *, result: ApplyResult | None = None) -> None:
        super().__init__(message, extra={"result": result.as_dict()} if result else None)
        self.result = result
