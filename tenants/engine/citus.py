"""Lint rules for Citus schema-based sharding: what a distributed schema does not support."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from tenants.engine.sqlast import enum_name, names, walk

INT_TYPES = frozenset({"int", "int2", "int4", "integer", "smallint"})
SERIAL_TYPES = frozenset({"serial", "serial4", "smallserial", "serial2"})


def citus_problems(stmt: ast.Node) -> Iterator[tuple[ast.Node, str, str]]:
    """(node, rule, message) for what Citus schema-based sharding does not support."""
    if isinstance(stmt, ast.CreateStmt) and stmt.inhRelations and stmt.partbound is None:
        yield stmt, "citus-inheritance", "table inheritance (INHERITS) is not supported by distributed schemas"
    if isinstance(stmt, (ast.CreateForeignTableStmt, ast.CreateForeignServerStmt, ast.CreateFdwStmt)):
        yield stmt, "citus-foreign-table", "foreign tables and servers are not supported by distributed schemas"
    if isinstance(stmt, ast.ImportForeignSchemaStmt):
        yield stmt, "citus-foreign-table", "IMPORT FOREIGN SCHEMA is not supported by distributed schemas"
    if isinstance(stmt, ast.AlterObjectSchemaStmt):
        yield stmt, "citus-set-schema", "ALTER ... SET SCHEMA moves objects between schemas; not supported"
    if isinstance(stmt, (ast.CreatePolicyStmt, ast.AlterPolicyStmt)):
        for clause in (stmt.qual, stmt.with_check):
            if any(isinstance(n, ast.SubLink) for n in walk(clause)):
                yield stmt, "citus-policy-subquery", "row-level security policies must not contain subqueries"
                break
    for node in walk(stmt):
        if isinstance(node, ast.ColumnDef) and isinstance(node.typeName, ast.TypeName):
            yield from _key_problems(node)


def _key_problems(node: ast.ColumnDef) -> Iterator[tuple[ast.Node, str, str]]:
    type_name = (names(getattr(node.typeName, "names", None)) or [""])[-1].lower()
    if type_name in SERIAL_TYPES:
        yield node, "citus-int-key", f"column {node.colname} is {type_name}: use bigint identity or uuid keys"
    elif type_name in INT_TYPES and any(
        isinstance(c, ast.Constraint) and enum_name(c.contype) == "CONSTR_IDENTITY" for c in node.constraints or ()
    ):
        yield node, "citus-int-key", f"column {node.colname} is an int identity: use bigint identity or uuid keys"
