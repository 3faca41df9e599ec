"""Reading and rendering the versioned SQL templates (``NNN_name.pgsql``).

``template_set_read`` checks the directory's structure (names, duplicate and missing numbers, symlinks and
files resolving outside the folder); the per-file rules are in ``tenants.engine.lint``. Files are split
into statements by PostgreSQL's own parser (libpg_query, through pglast), never on semicolons.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from pglast.parser import ParseError, split
from psycopg import sql

from ghostcrm.core.errors import ValidationError

FILENAME_RE = re.compile(r"^(\d{3})_([a-z0-9][a-z0-9_]*)\.pgsql$")
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
IDENTIFIER_PLACEHOLDERS = ("owner_role", "app_role")
LITERAL_PLACEHOLDERS = ("tenant_id",)
PLACEHOLDERS = IDENTIFIER_PLACEHOLDERS + LITERAL_PLACEHOLDERS
KNOWN_PLACEHOLDERS = ", ".join("${" + name + "}" for name in PLACEHOLDERS)
HEADER_RE = re.compile(r"^--\s*tenant_sql:\s*(?P<body>.*?)\s*$")
IGNORED_FILES = re.compile(r"^(\.|README)", re.IGNORECASE)
# Rules that make a template unsafe to apply at all: `apply` refuses a set while any of these is present.
# The privilege-related ones are refusals because a template runs SQL on thousands of clients' schemas.
BLOCKING_RULES = frozenset(
    {
        "name",
        "duplicate",
        "gap",
        "encoding",
        "symlink",
        "parse",
        "placeholder",
        "header",
        "transaction-control",
        "non-transactional",
        "role-switch",
        "hard-coded-schema",
        "extension",
        "privilege",
        "dynamic-sql",
    }
)


@dataclass(frozen=True)
class LintProblem:
    filename: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.rule}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.filename, "line": self.line, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Headers:
    """The ``-- tenant_sql: ...`` lines of a file's leading comment block."""

    no_transaction: bool = False
    allows: frozenset[str] = frozenset()
    values: tuple[tuple[str, str], ...] = ()
    unknown: tuple[tuple[int, str], ...] = ()  # (line, text) of header lines that mean nothing

    def value(self, key: str) -> str | None:
        return dict(self.values).get(key)


HEADER_KEYS = frozenset({"lock_timeout", "statement_timeout"})


def headers_read(text: str) -> Headers:
    """Parse the header lines: ``no-transaction``, ``allow RULE[, RULE]``, ``key=value``."""
    no_transaction = False
    allows: set[str] = set()
    values: list[tuple[str, str]] = []
    unknown: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        match = HEADER_RE.match(line)
        if match is None:
            continue
        body = match.group("body")
        if body == "no-transaction":
            no_transaction = True
        elif body.startswith("allow "):
            allows.update(part.strip() for part in body[len("allow ") :].split(",") if part.strip())
        elif "=" in body and body.split("=", 1)[0].strip() in HEADER_KEYS:
            key, value = body.split("=", 1)
            values.append((key.strip(), value.strip()))
        else:
            unknown.append((number, body))
    return Headers(no_transaction, frozenset(allows), tuple(values), tuple(unknown))


@dataclass(frozen=True)
class Template:
    version: int
    description: str
    filename: str
    path: Path
    text: str
    checksum: str
    headers: Headers = field(default_factory=Headers)

    @property
    def no_transaction(self) -> bool:
        return self.headers.no_transaction

    def render(self, *, owner_role: str, app_role: str, tenant_id: str) -> str:
        """The file with its placeholders replaced: role names as quoted identifiers, the id as a literal."""
        values = {
            "owner_role": sql.Identifier(owner_role).as_string(),
            "app_role": sql.Identifier(app_role).as_string(),
            "tenant_id": sql.Literal(tenant_id).as_string(),
        }
        unknown = sorted({name for name in PLACEHOLDER_RE.findall(self.text) if name not in values})
        if unknown:
            raise ValidationError(
                f"{self.filename} uses unknown placeholder(s) {', '.join('${' + n + '}' for n in unknown)}; "
                f"known ones are {KNOWN_PLACEHOLDERS}.",
                code="unknown_placeholder",
            )
        return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], self.text)


@dataclass
class TemplateSet:
    directory: Path
    templates: list[Template] = field(default_factory=list)
    problems: list[LintProblem] = field(default_factory=list)

    @property
    def by_version(self) -> dict[int, Template]:
        return {t.version: t for t in self.templates}

    def blocking_problems(self) -> list[LintProblem]:
        return [p for p in self.problems if p.rule in BLOCKING_RULES]


def file_checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def templates_directory(directory: Path | None) -> Path:
    return Path(directory) if directory is not None else Path(settings.TENANT_TEMPLATES_DIR)


def _outside_problem(path: Path, root: Path) -> LintProblem | None:
    """A symlink, or a file whose real path is not directly in the folder, is never read."""
    if path.is_symlink():
        return LintProblem(path.name, 1, "symlink", "is a symbolic link; templates must be plain files in the folder")
    if path.resolve().parent != root:
        return LintProblem(path.name, 1, "symlink", "resolves outside the template folder")
    return None


def template_set_read(directory: Path) -> TemplateSet:
    """Read every template in ``directory`` in version order, with the structural problems found."""
    if not directory.is_dir():
        raise ValidationError(f"Template directory {directory} does not exist.", code="template_dir_missing")
    result = TemplateSet(directory=directory)
    root = directory.resolve()
    seen: dict[int, list[str]] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() or p.is_symlink()):
        if IGNORED_FILES.match(path.name):
            continue
        match = FILENAME_RE.match(path.name)
        if not match:
            result.problems.append(
                LintProblem(path.name, 1, "name", "file names must look like NNN_name.pgsql (lowercase, 3 digits)")
            )
            continue
        outside = _outside_problem(path, root)
        if outside is not None:
            result.problems.append(outside)
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append(LintProblem(path.name, 1, "encoding", f"not UTF-8 ({exc.reason})"))
            continue
        version = int(match.group(1))
        seen.setdefault(version, []).append(path.name)
        result.templates.append(
            Template(
                version=version,
                description=match.group(2).replace("_", " "),
                filename=path.name,
                path=path,
                text=text,
                checksum=file_checksum(data),
                headers=headers_read(text),
            )
        )
    result.problems.extend(_numbering_problems(seen))
    # Duplicated versions cannot be ordered safely: keep the first name only, the set is refused anyway.
    unique: dict[int, Template] = {}
    for template in sorted(result.templates, key=lambda t: (t.version, t.filename)):
        unique.setdefault(template.version, template)
    result.templates = list(unique.values())
    return result


def _numbering_problems(seen: dict[int, list[str]]) -> list[LintProblem]:
    problems = []
    for version, names in sorted(seen.items()):
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                problems.append(LintProblem(name, 1, "duplicate", f"version {version:03d} is also used by {others}"))
    for version in (v for v in range(1, max(seen, default=0) + 1) if v not in seen):
        following = min(v for v in seen if v > version)
        problems.append(
            LintProblem(seen[following][0], 1, "gap", f"version {version:03d} is missing before {following:03d}")
        )
    return problems


def dummy_render(text: str) -> str:
    """Placeholders replaced by parseable stand-ins on the same line (line numbers stay true)."""

    def stand_in(match: re.Match[str]) -> str:
        name = match.group(1)
        return "'00000000-0000-0000-0000-000000000000'" if name in LITERAL_PLACEHOLDERS else f'"{name}"'

    return PLACEHOLDER_RE.sub(stand_in, text)


def statement_slices(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of each statement, by PostgreSQL's parser (its scanner on bad SQL)."""
    try:
        slices = split(text, only_slices=True)
    except ParseError:
        try:
            slices = split(text, with_parser=False, only_slices=True)
        except ParseError:
            return [(0, len(text))]
    return [(s.start, s.stop) for s in slices]
