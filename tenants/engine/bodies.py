"""Lint of function and DO bodies: the SQL inside strings that PostgreSQL's parser does not look into.

SQL bodies are parsed as SQL and PL/pgSQL bodies with PostgreSQL's PL/pgSQL parser; every embedded
statement and expression is then checked by the same rules as top-level SQL. ``EXECUTE`` of a constant
string (or of ``format()`` over a constant with only ``%I``/``%L``) is parsed and checked too; any other
``EXECUTE`` is ``dynamic-sql``, which a file may allow with ``-- tenant_sql: allow dynamic-sql``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pglast import ast, parse_plpgsql, parse_sql
from pglast.parser import ParseError

from tenants.engine.rules import statement_problems
from tenants.engine.sqlast import constant_string, names, node_location

ASSIGNMENT_RE = re.compile(r":=|=")
BODY_PUBLIC_RE = re.compile(r"\bpublic\s*\.\s*\w", re.IGNORECASE)
BODY_SEARCH_PATH_RE = re.compile(r"\bset\s+(local\s+)?search_path\b|set_config\s*\(\s*'search_path'", re.IGNORECASE)
FORMAT_SAFE_RE = re.compile(r"%(?![IL%])")  # a format() directive other than %I, %L and %%
# PL/pgSQL statements that run a string as SQL, and the key of that string's expression.
DYNAMIC_KEYS = {
    "PLpgSQL_stmt_dynexecute": "query",
    "PLpgSQL_stmt_dynfors": "query",
    "PLpgSQL_stmt_open": "dynquery",
    "PLpgSQL_stmt_return_query": "dynquery",
}
BodyFinding = tuple[int, str, str]  # (offset in the body, rule, message)


def bodies(stmt: ast.Node) -> Iterator[str]:
    """Function and DO bodies of one statement."""
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


def body_language(stmt: ast.Node) -> str:
    options: Any = getattr(stmt, "options" if isinstance(stmt, ast.CreateFunctionStmt) else "args", ())
    for option in options or ():
        if isinstance(option, ast.DefElem) and option.defname == "language" and isinstance(option.arg, ast.String):
            return str(option.arg.sval).lower()
    return "plpgsql" if isinstance(stmt, ast.DoStmt) else ""


def _plpgsql_items(node: Any, line: int = 0) -> Iterator[tuple[int, str, Any]]:
    """(line in the body, kind, value): every ``PLpgSQL_expr`` and every dynamic-SQL expression."""
    if isinstance(node, list):
        for item in node:
            yield from _plpgsql_items(item, line)
    elif isinstance(node, dict):
        line = int(node.get("lineno") or line)
        for key, value in node.items():
            if key in DYNAMIC_KEYS and isinstance(value, dict):
                expr = value.get(DYNAMIC_KEYS[key])
                if isinstance(expr, dict):
                    yield int(value.get("lineno") or line), "dynamic", expr.get("PLpgSQL_expr", {})
            if key == "PLpgSQL_expr" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield line, "expr", value
            elif isinstance(value, (dict, list)):
                yield from _plpgsql_items(value, line)


def _checked(sql_text: str) -> Iterator[tuple[str, str]]:
    """(rule, message) of every statement in ``sql_text`` (nothing when it does not parse)."""
    try:
        parsed = parse_sql(sql_text)
    except ParseError:
        return  # PL/pgSQL-only syntax (assignment targets, cursors); nothing to check
    for raw in parsed:
        if raw.stmt is not None:
            for _node, rule, message in statement_problems(raw.stmt):
                yield rule, message


def _constant_sql(expression: str) -> str | None:
    """The SQL an EXECUTE runs when it is fixed: a constant string, or format() of one with %I/%L only."""
    try:
        parsed = parse_sql(f"SELECT {expression}")
    except ParseError:
        return None
    stmt = parsed[0].stmt if parsed else None
    target = stmt.targetList[0].val if isinstance(stmt, ast.SelectStmt) and stmt.targetList else None
    text = constant_string(target)
    if text is not None:
        return text
    if isinstance(target, ast.FuncCall) and (names(target.funcname) or [""])[-1].lower() == "format" and target.args:
        pattern = constant_string(target.args[0])
        if pattern is not None and not FORMAT_SAFE_RE.search(pattern):
            # %I. qualifies by a schema chosen at run time (the trigger's own): checked unqualified.
            return pattern.replace("%I.", "").replace("%I", "tenant_sql_identifier").replace("%L", "NULL")
    return None


def _expression_findings(mode: int, query: str) -> Iterator[tuple[str, str]]:
    # Parse modes (libpg_query's RawParseMode): 0 a statement, 1 a type name, 2 an expression,
    # 3-5 an assignment "target := expression".
    if mode == 1:
        return
    if mode >= 3:
        query = ASSIGNMENT_RE.split(query, maxsplit=1)[-1]
    yield from _checked(query if mode == 0 else f"SELECT {query}")


def _plpgsql_findings(stmt: ast.Node, body: str, source: str) -> Iterator[BodyFinding]:
    # A function is parsed as written (so its parameters and NEW/OLD are known); a DO body becomes the
    # body of a parameterless function.
    wrapped = (
        source
        if isinstance(stmt, ast.CreateFunctionStmt)
        else "CREATE FUNCTION tenant_sql_lint() RETURNS void LANGUAGE plpgsql AS "
        f"$tenant_sql_lint${body}$tenant_sql_lint$"
    )
    line_starts = [0] + [i + 1 for i, char in enumerate(body) if char == "\n"]
    for line, kind, value in _plpgsql_items(parse_plpgsql(wrapped)):
        offset = line_starts[min(max(line - 1, 0), len(line_starts) - 1)]
        if kind == "expr":
            for rule, message in _expression_findings(int(value.get("parseMode", 0) or 0), value["query"]):
                yield offset, rule, message
            continue
        fixed = _constant_sql(str(value.get("query", "")))
        if fixed is None:
            yield offset, "dynamic-sql", "EXECUTE of a string built at run time; lint cannot see what it runs"
        else:
            for rule, message in _checked(fixed):
                yield offset, rule, f"in EXECUTE: {message}"


def body_problems(stmt: ast.Node, body: str, source: str) -> Iterator[BodyFinding]:
    """(offset in the body, rule, message) for one function or DO body."""
    for found in BODY_PUBLIC_RE.finditer(body):
        yield found.start(), "hard-coded-schema", "function body refers to public.<name>"
    for found in BODY_SEARCH_PATH_RE.finditer(body):
        yield found.start(), "hard-coded-schema", "function body sets search_path"
    language = body_language(stmt)
    findings: list[BodyFinding] = []
    try:
        if language == "sql":
            for raw in parse_sql(body):
                for node, rule, message in statement_problems(raw.stmt) if raw.stmt is not None else ():
                    findings.append((node_location(node, 0), rule, message))
        elif language == "plpgsql":
            findings.extend(_plpgsql_findings(stmt, body, source))
    except ParseError:
        return  # the function's own CREATE reports what PostgreSQL cannot parse
    for offset, rule, message in findings:
        # public.<name> is reported once, by the regex above (which also sees strings).
        if "names schema 'public'" in message:
            continue
        yield offset, rule, f"in the body: {message}"
