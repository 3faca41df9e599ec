"""Safety lint: changes that block a client's CRM or destroy data, refused unless the file says it means them.

In the spirit of Squawk and Atlas's analyzers. Each rule has a code, a sentence and the line; a file allows a
rule with a header line ``-- tenant_sql: allow CODE`` (or a group: ``table-rewrite``, ``destructive``).
Tables created earlier in the same file are new: nothing can be blocked or lost on them, so no rule applies.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pglast import ast

from tenants.engine.sqlast import enum_name, names, walk

SAFETY_RULES = {
    "drop-table": "DROP TABLE removes the table and its rows from every client",
    "drop-column": "DROP COLUMN removes the column's data from every client",
    "column-type": "ALTER COLUMN ... TYPE rewrites the table under an ACCESS EXCLUSIVE lock",
    "set-not-null": "SET NOT NULL scans the table under an ACCESS EXCLUSIVE lock; first add "
    "CHECK (col IS NOT NULL) NOT VALID and VALIDATE CONSTRAINT it",
    "volatile-default": "ADD COLUMN with a volatile default rewrites the table under an ACCESS EXCLUSIVE lock",
    "constraint-not-valid": "a FOREIGN KEY or CHECK added without NOT VALID checks every row under lock; add it "
    "NOT VALID, then VALIDATE CONSTRAINT",
    "index-not-concurrent": "CREATE INDEX without CONCURRENTLY blocks writes to an existing table while it builds; "
    "use CREATE INDEX CONCURRENTLY in a '-- tenant_sql: no-transaction' file",
    "rename": "renaming a table or column breaks the application code that still uses the old name",
}
SAFETY_GROUPS = {
    "table-rewrite": frozenset({"column-type", "volatile-default", "set-not-null"}),
    "destructive": frozenset({"drop-table", "drop-column"}),
}
# Functions whose value differs per row: a default calling one is computed for every existing row.
VOLATILE_FUNCTIONS = frozenset(
    {"random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v4", "clock_timestamp", "timeofday",
     "nextval", "txid_current", "statement_timestamp", "random_normal", "setseed"}
)  # fmt: skip
Finding = tuple[ast.Node, str, str]


def allowed_rules(allows: frozenset[str]) -> frozenset[str]:
    """The safety codes a file's ``allow`` headers cover (groups expanded)."""
    expanded = set(allows)
    for group, rules in SAFETY_GROUPS.items():
        if group in allows:
            expanded |= rules
    return frozenset(expanded)


def _finding(node: ast.Node, rule: str) -> Finding:
    return node, rule, SAFETY_RULES[rule]


def _unvalidated(constraint: object) -> bool:
    return (
        isinstance(constraint, ast.Constraint)
        and enum_name(constraint.contype) in {"CONSTR_FOREIGN", "CONSTR_CHECK"}
        and not constraint.skip_validation
    )


def _volatile(expression: ast.Node | None) -> bool:
    return any(
        isinstance(n, ast.FuncCall) and (names(n.funcname) or [""])[-1].lower() in VOLATILE_FUNCTIONS
        for n in walk(expression)
    )


def _add_column_findings(cmd: ast.AlterTableCmd) -> Iterator[Finding]:
    column = cmd.def_
    if not isinstance(column, ast.ColumnDef):
        return
    for constraint in column.constraints or ():
        if isinstance(constraint, ast.Constraint) and enum_name(constraint.contype) == "CONSTR_DEFAULT":
            if _volatile(constraint.raw_expr):
                yield _finding(cmd, "volatile-default")
        elif _unvalidated(constraint):
            yield _finding(cmd, "constraint-not-valid")


def _alter_findings(stmt: ast.AlterTableStmt, validated: set[str]) -> Iterator[Finding]:
    table = str(stmt.relation.relname) if isinstance(stmt.relation, ast.RangeVar) else ""
    for cmd in stmt.cmds or ():
        if not isinstance(cmd, ast.AlterTableCmd):
            continue
        kind = enum_name(cmd.subtype)
        if kind == "AT_DropColumn":
            yield _finding(cmd, "drop-column")
        elif kind == "AT_AlterColumnType":
            yield _finding(cmd, "column-type")
        elif kind == "AT_SetNotNull" and table not in validated:
            yield _finding(cmd, "set-not-null")
        elif kind == "AT_AddColumn":
            yield from _add_column_findings(cmd)
        elif kind == "AT_AddConstraint" and _unvalidated(cmd.def_):
            yield _finding(cmd, "constraint-not-valid")
        elif kind == "AT_ValidateConstraint":
            validated.add(table)


def _relation(stmt: ast.Node) -> str | None:
    relation = getattr(stmt, "relation", None)
    return relation.relname if isinstance(relation, ast.RangeVar) else None


def _created(stmt: ast.Node) -> str | None:
    """The table a statement creates, if it creates one."""
    if isinstance(stmt, ast.CreateStmt):
        return _relation(stmt)
    if isinstance(stmt, ast.CreateTableAsStmt) and isinstance(stmt.into, ast.IntoClause):
        return getattr(stmt.into.rel, "relname", None)
    return None


def _statement_findings(stmt: ast.Node, created: set[str], validated: set[str]) -> Iterator[Finding]:
    if _relation(stmt) in created:
        return
    if isinstance(stmt, ast.DropStmt) and enum_name(stmt.removeType) == "OBJECT_TABLE":
        if any((names(obj) or [""])[-1] not in created for obj in stmt.objects or ()):
            yield _finding(stmt, "drop-table")
    elif isinstance(stmt, ast.AlterTableStmt):
        yield from _alter_findings(stmt, validated)
    elif isinstance(stmt, ast.IndexStmt) and not stmt.concurrent:
        yield _finding(stmt, "index-not-concurrent")
    elif isinstance(stmt, ast.RenameStmt) and enum_name(stmt.renameType) in {"OBJECT_TABLE", "OBJECT_COLUMN"}:
        yield _finding(stmt, "rename")


def safety_problems(statements: Sequence[ast.Node]) -> Iterator[Finding]:
    """(node, rule, sentence) for every unsafe change in one file's statements, in order."""
    created: set[str] = set()
    validated: set[str] = set()
    for stmt in statements:
        yield from _statement_findings(stmt, created, validated)
        table = _created(stmt)
        if table:
            created.add(table)
