"""Reading and linting the versioned SQL templates (``NNN_name.pgsql``).

Files are parsed with PostgreSQL's own parser (libpg_query, through pglast), never split on semicolons.
``template_set_read`` checks the directory's structure (names, duplicate and missing numbers);
``templates_lint`` adds the per-file rules. Each problem is one ``file:line: rule: message`` line.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglast import ast, parse_plpgsql, parse_sql
from pglast.parser import ParseError, parse_sql_json, split
from psycopg import sql

from ghostcrm.core.errors import ValidationError

FILENAME_RE = re.compile(r"^(\d{3})_([a-z0-9][a-z0-9_]*)\.pgsql$")
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
IDENTIFIER_PLACEHOLDERS = ("owner_role", "app_role")
LITERAL_PLACEHOLDERS = ("tenant_id",)
PLACEHOLDERS = IDENTIFIER_PLACEHOLDERS + LITERAL_PLACEHOLDERS
KNOWN_PLACEHOLDERS = ", ".join("${" + name + "}" for name in PLACEHOLDERS)
NO_TRANSACTION_RE = re.compile(r"^--\s*tenant_sql:\s*no-transaction\s*$")
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
# Rules that make a template set unsafe to apply at all: `apply` refuses while any of these is present.
BLOCKING_RULES = frozenset(
    {"name", "duplicate", "gap", "encoding", "parse", "placeholder", "transaction-control", "non-transactional"}
)
INT_TYPES = frozenset({"int", "int2", "int4", "integer", "smallint"})
SERIAL_TYPES = frozenset({"serial", "serial4", "smallserial", "serial2"})
IGNORED_FILES = re.compile(r"^(\.|README)", re.IGNORECASE)


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
class Template:
    version: int
    description: str
    filename: str
    path: Path
    text: str
    checksum: str
    no_transaction: bool

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
                f"known ones are {', '.join('${' + n + '}' for n in PLACEHOLDERS)}.",
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


def _header_no_transaction(text: str) -> bool:
    """True when the file's leading comment block holds the explicit opt-out line."""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            return False
        if NO_TRANSACTION_RE.match(line):
            return True
    return False


def template_set_read(directory: Path) -> TemplateSet:
    """Read every template in ``directory`` in version order, with the structural problems found."""
    if not directory.is_dir():
        raise ValidationError(f"Template directory {directory} does not exist.", code="template_dir_missing")
    result = TemplateSet(directory=directory)
    seen: dict[int, list[str]] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        if IGNORED_FILES.match(path.name):
            continue
        match = FILENAME_RE.match(path.name)
        if not match:
            result.problems.append(
                LintProblem(path.name, 1, "name", "file names must look like NNN_name.pgsql (lowercase, 3 digits)")
            )
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
                no_transaction=_header_no_transaction(text),
            )
        )
    for version, names in sorted(seen.items()):
        if len(names) > 1:
            for name in names:
                others = ", ".join(n for n in names if n != name)
                result.problems.append(
                    LintProblem(name, 1, "duplicate", f"version {version:03d} is also used by {others}")
                )
    if seen:
        first_missing = [v for v in range(1, max(seen) + 1) if v not in seen]
        for version in first_missing:
            following = min(v for v in seen if v > version)
            result.problems.append(
                LintProblem(seen[following][0], 1, "gap", f"version {version:03d} is missing before {following:03d}")
            )
    # Duplicated versions cannot be ordered safely: keep the first name only, the set is refused anyway.
    unique: dict[int, Template] = {}
    for template in sorted(result.templates, key=lambda t: (t.version, t.filename)):
        unique.setdefault(template.version, template)
    result.templates = list(unique.values())
    return result


def templates_lint(directory: Path) -> TemplateSet:
    """The template set with every problem: structure plus per-file rules, sorted by file and line."""
    result = template_set_read(directory)
    for template in result.templates:
        result.problems.extend(template_lint(template))
    result.problems.sort(key=lambda p: (p.filename, p.line, p.rule))
    return result


# --- per-file rules -----------------------------------------------------------------------------------


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, max(offset, 0)) + 1


def _dummy_render(text: str) -> str:
    """Placeholders replaced by parseable stand-ins on the same line (line numbers stay true)."""

    def stand_in(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in IDENTIFIER_PLACEHOLDERS:
            return f'"{name}"'
        return "'00000000-0000-0000-0000-000000000000'" if name in LITERAL_PLACEHOLDERS else f'"{name}"'

    return PLACEHOLDER_RE.sub(stand_in, text)


def _walk(node: Any) -> Iterator[ast.Node]:
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for attr in type(node).__slots__:  # type: ignore[attr-defined]
            yield from _walk(getattr(node, attr, None))


def _names(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(item.sval) for item in value if isinstance(item, ast.String)]
    return []


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _stmt_start(text: str, location: int) -> int:
    """Offset of the first token of a statement (pglast's location may include leading space and comments)."""
    i = location
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i)
            i = len(text) if end < 0 else end + 2
        else:
            break
    return i


NON_TRANSACTIONAL = {
    "VacuumStmt": "VACUUM/ANALYZE cannot run inside a transaction",
    "CreatedbStmt": "CREATE DATABASE cannot run inside a transaction",
    "DropdbStmt": "DROP DATABASE cannot run inside a transaction",
    "AlterSystemStmt": "ALTER SYSTEM cannot run inside a transaction",
    "CreateTableSpaceStmt": "CREATE TABLESPACE cannot run inside a transaction",
    "DropTableSpaceStmt": "DROP TABLESPACE cannot run inside a transaction",
}


def _non_transactional(stmt: ast.Node) -> str | None:
    kind = type(stmt).__name__
    if kind in NON_TRANSACTIONAL:
        return NON_TRANSACTIONAL[kind]
    if isinstance(stmt, ast.IndexStmt) and stmt.concurrent:
        return "CREATE INDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.DropStmt) and stmt.concurrent:
        return "DROP INDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.ReindexStmt) and any(
        isinstance(p, ast.DefElem) and p.defname == "concurrently" for p in stmt.params or ()
    ):
        return "REINDEX CONCURRENTLY cannot run inside a transaction"
    if isinstance(stmt, ast.AlterTableStmt):
        for cmd in stmt.cmds or ():
            if isinstance(cmd, ast.AlterTableCmd) and isinstance(cmd.def_, ast.PartitionCmd) and cmd.def_.concurrent:
                return "DETACH PARTITION CONCURRENTLY cannot run inside a transaction"
    return None


def _qualified_problem(names: list[str], *, minimum: int = 2) -> str | None:
    if len(names) >= minimum and names[0] not in SYSTEM_SCHEMAS:
        return f"{'.'.join(names)} names schema {names[0]!r}; templates run under the tenant's search_path"
    return None


def _schema_problems(stmt: ast.Node) -> Iterator[tuple[ast.Node, str]]:
    """(node, message) for every hard-coded schema in one statement."""
    if isinstance(stmt, ast.CreateSchemaStmt):
        yield stmt, "CREATE SCHEMA: the engine creates the tenant's schema"
    for node in _walk(stmt):
        message: str | None = None
        if isinstance(node, ast.RangeVar) and node.schemaname and node.schemaname not in SYSTEM_SCHEMAS:
            message = f"{node.schemaname}.{node.relname} names schema {node.schemaname!r}"
        elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
            message = "SET search_path: the engine sets the search_path (SET LOCAL, tenant schema only)"
        elif isinstance(node, ast.FuncCall) and _is_search_path_set_config(node):
            message = "set_config('search_path', ...): the engine sets the search_path (SET LOCAL, tenant schema only)"
        elif isinstance(node, ast.FuncCall):
            message = _qualified_problem(_names(node.funcname))
        elif isinstance(node, ast.TypeName):
            message = _qualified_problem(_names(node.names))
        elif isinstance(node, ast.ObjectWithArgs):
            message = _qualified_problem(_names(node.objname))
        elif isinstance(node, (ast.CreateFunctionStmt, ast.CreateTrigStmt)):
            message = _qualified_problem(_names(node.funcname))
        elif isinstance(node, ast.DefineStmt):
            message = _qualified_problem(_names(node.defnames))
        elif isinstance(node, ast.CreateDomainStmt):
            message = _qualified_problem(_names(node.domainname))
        elif isinstance(node, (ast.CreateEnumStmt, ast.AlterEnumStmt)):
            message = _qualified_problem(_names(node.typeName))
        elif isinstance(node, ast.ColumnRef):
            message = _qualified_problem(_names(node.fields), minimum=3)
        elif isinstance(node, ast.DropStmt):
            for obj in node.objects or ():
                message = message or _qualified_problem(_names(obj))
        elif isinstance(node, ast.CommentStmt):
            minimum = 3 if _enum_name(node.objtype) == "OBJECT_COLUMN" else 2
            message = _qualified_problem(_names(node.object), minimum=minimum)
        elif isinstance(node, ast.GrantStmt) and (
            _enum_name(node.targtype) == "ACL_TARGET_ALL_IN_SCHEMA" or _enum_name(node.objtype) == "OBJECT_SCHEMA"
        ):
            message = f"GRANT names schema(s) {', '.join(_names(node.objects))}"
        elif isinstance(node, ast.AlterDefaultPrivilegesStmt):
            for option in node.options or ():
                if isinstance(option, ast.DefElem) and option.defname == "schemas":
                    message = f"ALTER DEFAULT PRIVILEGES IN SCHEMA {', '.join(_names(option.arg))}"
        if message:
            yield node, message


def _statement_text(text: str, raw: Any) -> str:
    start = raw.stmt_location or 0
    return text[start : start + raw.stmt_len] if raw.stmt_len else text[start:]


def _is_search_path_set_config(node: ast.FuncCall) -> bool:
    names = _names(node.funcname)
    if not names or names[-1].lower() != "set_config" or not node.args:
        return False
    first = node.args[0]
    value = getattr(first, "val", None) if isinstance(first, ast.A_Const) else None
    return isinstance(value, ast.String) and (value.sval or "").lower() == "search_path"


def _body_language(stmt: ast.Node) -> str:
    options: Any = getattr(stmt, "options" if isinstance(stmt, ast.CreateFunctionStmt) else "args", ())
    for option in options or ():
        if isinstance(option, ast.DefElem) and option.defname == "language" and isinstance(option.arg, ast.String):
            return str(option.arg.sval).lower()
    return "plpgsql" if isinstance(stmt, ast.DoStmt) else ""


def _plpgsql_queries(node: Any) -> Iterator[tuple[int, str, int]]:
    """(line in the body, SQL, parse mode) of every expression in a parsed PL/pgSQL function."""
    if isinstance(node, list):
        for item in node:
            yield from _plpgsql_queries(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "PLpgSQL_expr" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield int(node.get("lineno", 0) or 0), value["query"], int(value.get("parseMode", 0) or 0)
            elif isinstance(value, (dict, list)):
                line = value.get("lineno") if isinstance(value, dict) else None
                for found_line, query, mode in _plpgsql_queries(value):
                    yield (found_line or int(line or 0)), query, mode


def _body_schema_problems(stmt: ast.Node, body: str, source: str) -> Iterator[tuple[int, str]]:
    """(offset in the body, message) for schema-qualified names in the SQL a function or DO body runs.

    The parser does not look inside bodies; here SQL bodies are parsed as SQL and PL/pgSQL bodies with
    PostgreSQL's PL/pgSQL parser, whose embedded statements and expressions are then checked like top-level
    SQL. ``public.`` is left to the body regex (it also sees dynamic SQL), so it is reported once.
    """
    language = _body_language(stmt)
    found: list[tuple[int, str]] = []
    try:
        if language == "sql":
            for raw in parse_sql(body):
                for node, message in _schema_problems(raw.stmt) if raw.stmt is not None else ():
                    location = getattr(node, "location", None)
                    found.append((location if isinstance(location, int) and location >= 0 else 0, message))
        elif language == "plpgsql":
            # A function is parsed as written (so its parameters and NEW/OLD are known); a DO body becomes the
            # body of a parameterless function.
            wrapped = (
                source
                if isinstance(stmt, ast.CreateFunctionStmt)
                else "CREATE FUNCTION tenant_sql_lint() RETURNS void LANGUAGE plpgsql AS "
                f"$tenant_sql_lint${body}$tenant_sql_lint$"
            )
            line_starts = [0] + [i + 1 for i, char in enumerate(body) if char == "\n"]
            for line, query, mode in _plpgsql_queries(parse_plpgsql(wrapped)):
                offset = line_starts[min(max(line - 1, 0), len(line_starts) - 1)]
                # Parse modes (libpg_query's RawParseMode): 0 a statement, 1 a type name, 2 an expression,
                # 3-5 an assignment "target := expression".
                if mode == 1:
                    continue
                if mode >= 3:
                    query = ASSIGNMENT_RE.split(query, maxsplit=1)[-1]
                try:
                    parsed = parse_sql(query if mode == 0 else f"SELECT {query}")
                except ParseError:
                    continue  # PL/pgSQL-only syntax (assignment targets, cursors); nothing to check
                for raw in parsed:
                    if raw.stmt is not None:
                        found.extend((offset, message) for _node, message in _schema_problems(raw.stmt))
    except ParseError:
        return  # the function's own CREATE reports what PostgreSQL cannot parse
    for offset, message in found:
        if "names schema 'public'" not in message:
            yield offset, message


ASSIGNMENT_RE = re.compile(r":=|=")
BODY_PUBLIC_RE = re.compile(r"\bpublic\s*\.\s*\w", re.IGNORECASE)
BODY_SEARCH_PATH_RE = re.compile(r"\bset\s+(local\s+)?search_path\b|set_config\s*\(\s*'search_path'", re.IGNORECASE)


def _bodies(stmt: ast.Node) -> Iterator[str]:
    """Function and DO bodies: SQL inside strings the parser does not look into."""
    options: Any = ()
    if isinstance(stmt, ast.CreateFunctionStmt):
        options = stmt.options or ()
    elif isinstance(stmt, ast.DoStmt):
        options = stmt.args or ()
    for option in options:
        if isinstance(option, ast.DefElem) and option.defname == "as":
            arg = option.arg
            for item in arg if isinstance(arg, (list, tuple)) else [arg]:
                if isinstance(item, ast.String) and item.sval is not None:
                    yield item.sval


def _citus_problems(stmt: ast.Node) -> Iterator[tuple[ast.Node, str, str]]:
    """(node, rule, message) for what Citus schema-based sharding does not support."""
    if isinstance(stmt, ast.CreateStmt) and stmt.inhRelations and stmt.partbound is None:
        yield stmt, "citus-inheritance", "table inheritance (INHERITS) is not supported by distributed schemas"
    if isinstance(stmt, (ast.CreateForeignTableStmt, ast.CreateForeignServerStmt, ast.CreateFdwStmt)):
        yield stmt, "citus-foreign-table", "foreign tables and servers are not supported by distributed schemas"
    if isinstance(stmt, ast.ImportForeignSchemaStmt):
        yield stmt, "citus-foreign-table", "IMPORT FOREIGN SCHEMA is not supported by distributed schemas"
    if isinstance(stmt, ast.AlterObjectSchemaStmt):
        yield stmt, "citus-set-schema", "ALTER ... SET SCHEMA moves objects between schemas; not supported"
    if isinstance(stmt, ast.CreateExtensionStmt):
        yield stmt, "extension", "extensions are database-wide: install them once, not per tenant"
    if isinstance(stmt, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
        for clause in (stmt.qual, stmt.with_check):
            if any(isinstance(n, ast.SubLink) for n in _walk(clause)):
                yield stmt, "citus-policy-subquery", "row-level security policies must not contain subqueries"
                break
    for node in _walk(stmt):
        if isinstance(node, ast.ColumnDef) and isinstance(node.typeName, ast.TypeName):
            type_name = (_names(node.typeName.names) or [""])[-1].lower()
            if type_name in SERIAL_TYPES:
                yield node, "citus-int-key", f"column {node.colname} is {type_name}: use bigint identity or uuid keys"
            elif type_name in INT_TYPES and any(
                isinstance(c, ast.Constraint) and _enum_name(c.contype) == "CONSTR_IDENTITY"
                for c in node.constraints or ()
            ):
                yield (
                    node,
                    "citus-int-key",
                    f"column {node.colname} is an int identity: use bigint identity or uuid keys",
                )


def template_lint(template: Template) -> list[LintProblem]:
    problems: list[LintProblem] = []
    name, text = template.filename, template.text
    # Offsets below are into the rendered text; stand-ins never add or remove a line, so lines agree.
    rendered = _dummy_render(text)

    def add(offset: int, rule: str, message: str) -> None:
        problems.append(LintProblem(name, _line_at(rendered, offset), rule, message))

    for match in PLACEHOLDER_RE.finditer(text):
        if match.group(1) not in PLACEHOLDERS:
            problems.append(
                LintProblem(
                    name,
                    _line_at(text, match.start()),
                    "placeholder",
                    f"unknown placeholder ${{{match.group(1)}}}; known: {KNOWN_PLACEHOLDERS}",
                )
            )
    try:
        statements = parse_sql(rendered)
    except ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        add(location, "parse", str(exc.args[0]))
        return problems
    if not statements:
        add(0, "parse", "the file holds no SQL statement")
        return problems
    needs_no_transaction = False
    for raw in statements:
        stmt = raw.stmt
        if stmt is None:
            continue
        start = _stmt_start(rendered, raw.stmt_location or 0)

        def at(node: ast.Node, *, _start: int = start) -> int:
            location = getattr(node, "location", None)
            return location if isinstance(location, int) and location >= 0 else _start

        if isinstance(stmt, ast.TransactionStmt):
            add(
                start, "transaction-control", "BEGIN/COMMIT/ROLLBACK/SAVEPOINT: the engine runs each file's transaction"
            )
        reason = _non_transactional(stmt)
        if reason:
            needs_no_transaction = True
            if not template.no_transaction:
                add(start, "non-transactional", f"{reason}; mark the file with '-- tenant_sql: no-transaction'")
        if isinstance(stmt, ast.VariableSetStmt) and (stmt.name or "").lower() in {"role", "session_authorization"}:
            add(start, "role-switch", "SET/RESET ROLE: the engine runs templates as the tenant's owner role")
        for node, message in _schema_problems(stmt):
            add(at(node), "hard-coded-schema", message)
        for body in _bodies(stmt):
            body_at = rendered.find(body, start)
            body_at = start if body_at < 0 else body_at
            for found in BODY_PUBLIC_RE.finditer(body):
                add(body_at + found.start(), "hard-coded-schema", "function body refers to public.<name>")
            for found in BODY_SEARCH_PATH_RE.finditer(body):
                add(body_at + found.start(), "hard-coded-schema", "function body sets search_path")
            for offset, message in _body_schema_problems(stmt, body, _statement_text(rendered, raw)):
                add(body_at + offset, "hard-coded-schema", f"in the body: {message}")
        for node, rule, message in _citus_problems(stmt):
            add(at(node), rule, message)
    if template.no_transaction and not needs_no_transaction:
        add(0, "no-transaction-unneeded", "marked no-transaction but nothing in it needs that; drop the marker")
    return problems


JSON_NON_TRANSACTIONAL = frozenset(NON_TRANSACTIONAL) | {"TransactionStmt"}
_APPLY_CHECKED: dict[str, bool] = {}


def template_apply_blocked(template: Template) -> bool:
    """Fast check before applying: does the file hold anything that makes applying it unsafe?

    Unknown placeholders, SQL that does not parse, transaction control, or non-transactional statements
    in a file not marked so. Uses the parser's JSON output (several times faster than building pglast's
    Python tree) and remembers the answer per checksum; ``template_lint`` explains what it found.
    """
    cached = _APPLY_CHECKED.get(template.checksum)
    if cached is not None:
        return cached
    blocked = any(name not in PLACEHOLDERS for name in PLACEHOLDER_RE.findall(template.text))
    if not blocked:
        try:
            tree = json.loads(parse_sql_json(_dummy_render(template.text)))
        except ParseError:
            tree, blocked = {}, True
        statements = tree.get("stmts", [])
        blocked = blocked or not statements
        for raw in statements:
            ((kind, node),) = raw["stmt"].items()
            if kind == "TransactionStmt" or (
                not template.no_transaction
                and (
                    kind in JSON_NON_TRANSACTIONAL
                    or (kind in {"IndexStmt", "DropStmt"} and node.get("concurrent"))
                    or (kind == "ReindexStmt" and "concurrently" in json.dumps(node.get("params", [])))
                    or (kind == "AlterTableStmt" and '"concurrent": true' in json.dumps(node.get("cmds", [])))
                )
            ):
                blocked = True
    if len(_APPLY_CHECKED) > 1000:
        _APPLY_CHECKED.clear()
    _APPLY_CHECKED[template.checksum] = blocked
    return blocked


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
