"""Linting the versioned SQL templates: the per-file rules over the parsed SQL.

Files are parsed with PostgreSQL's own parser (libpg_query, through pglast). ``templates_lint`` reports
every problem of a folder (structure from ``tenants.engine.templates`` plus the rules); ``template_refusals``
is what ``apply`` refuses a file for. Each problem is one ``file:line: rule: message`` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pglast import parse_sql
from pglast.parser import ParseError

from tenants.engine.bodies import bodies, body_problems
from tenants.engine.citus import citus_problems
from tenants.engine.rules import non_transactional, statement_problems
from tenants.engine.safety import SAFETY_GROUPS, SAFETY_RULES, allowed_rules, safety_problems
from tenants.engine.sqlast import line_at, node_location, statement_text, stmt_start
from tenants.engine.templates import (
    BLOCKING_RULES,
    KNOWN_PLACEHOLDERS,
    PLACEHOLDER_RE,
    PLACEHOLDERS,
    LintProblem,
    Template,
    TemplateSet,
    dummy_render,
    template_set_read,
)

DURATION_RE = re.compile(r"^[1-9][0-9]*\s*(us|ms|s|min|h|d)?$")
# Rules a file may allow with a header line ``-- tenant_sql: allow RULE``: dynamic SQL, and the safety rules
# (a rollout refuses a file they flag; ``apply`` of one schema does not).
ALLOWABLE_RULES = frozenset({"dynamic-sql"}) | frozenset(SAFETY_RULES) | frozenset(SAFETY_GROUPS)


def templates_lint(directory: Path) -> TemplateSet:
    """The template set with every problem: structure plus per-file rules, sorted by file and line."""
    result = template_set_read(directory)
    for template in result.templates:
        result.problems.extend(template_lint(template))
    result.problems.sort(key=lambda p: (p.filename, p.line, p.rule))
    return result


def _header_problems(template: Template) -> list[LintProblem]:
    problems = [
        LintProblem(template.filename, line, "header", f"unknown header '-- tenant_sql: {body}'")
        for line, body in template.headers.unknown
    ]
    for key, value in template.headers.values:
        if not DURATION_RE.match(value):
            problems.append(
                LintProblem(template.filename, 1, "header", f"{key}={value}: use a duration such as 2s, 500ms or 5min")
            )
    for rule in sorted(template.headers.allows - ALLOWABLE_RULES):
        problems.append(
            LintProblem(template.filename, 1, "header", f"'allow {rule}': only {', '.join(sorted(ALLOWABLE_RULES))}")
        )
    return problems


def _placeholder_problems(template: Template) -> list[LintProblem]:
    return [
        LintProblem(
            template.filename,
            line_at(template.text, match.start()),
            "placeholder",
            f"unknown placeholder ${{{match.group(1)}}}; known: {KNOWN_PLACEHOLDERS}",
        )
        for match in PLACEHOLDER_RE.finditer(template.text)
        if match.group(1) not in PLACEHOLDERS
    ]


Finding = tuple[int, str, str]  # (offset in the rendered text, rule, message)


def _statement_findings(rendered: str, raw: Any, *, no_transaction: bool) -> Iterator[Finding]:
    """Every finding of one top-level statement, bodies included; ``non-transactional`` whatever the header."""
    stmt = raw.stmt
    start = stmt_start(rendered, raw.stmt_location or 0)
    reason = non_transactional(stmt)
    if reason:
        message = f"{reason}; mark the file with '-- tenant_sql: no-transaction'"
        yield start, "needs-no-transaction" if no_transaction else "non-transactional", message
    for node, rule, message in statement_problems(stmt):
        yield start if rule == "transaction-control" else node_location(node, start), rule, message
    for body in bodies(stmt):
        body_at = rendered.find(body, start)
        body_at = start if body_at < 0 else body_at
        for offset, rule, message in body_problems(stmt, body, statement_text(rendered, raw)):
            yield body_at + offset, rule, message
    for node, rule, message in citus_problems(stmt):
        yield node_location(node, start), rule, message


def template_lint(template: Template) -> list[LintProblem]:
    """Every problem of one file, in the order found."""
    problems = _header_problems(template) + _placeholder_problems(template)
    # Offsets below are into the rendered text; stand-ins never add or remove a line, so lines agree.
    rendered = dummy_render(template.text)

    allows = allowed_rules(template.headers.allows)

    def add(offset: int, rule: str, message: str) -> None:
        if rule not in allows:
            problems.append(LintProblem(template.filename, line_at(rendered, offset), rule, message))

    try:
        statements = [raw for raw in parse_sql(rendered) if raw.stmt is not None]
    except ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        add(location, "parse", str(exc.args[0]))
        return problems
    if not statements:
        add(0, "parse", "the file holds no SQL statement")
        return problems
    needs_no_transaction = False
    for raw in statements:
        for offset, rule, message in _statement_findings(rendered, raw, no_transaction=template.no_transaction):
            if rule == "needs-no-transaction":
                needs_no_transaction = True
            else:
                needs_no_transaction = needs_no_transaction or rule == "non-transactional"
                add(offset, rule, message)
    for node, rule, message in safety_problems([raw.stmt for raw in statements if raw.stmt is not None]):
        location = node_location(node, -1)
        add(location if location >= 0 else _start_of(rendered, statements, node), rule, message)
    if template.no_transaction and not needs_no_transaction:
        add(0, "no-transaction-unneeded", "marked no-transaction but nothing in it needs that; drop the marker")
    return problems


def _start_of(rendered: str, statements: list[Any], node: Any) -> int:
    """Where the statement holding ``node`` starts (safety findings are statements or their commands)."""
    for raw in statements:
        if raw.stmt is node or any(node is cmd for cmd in getattr(raw.stmt, "cmds", None) or ()):
            return stmt_start(rendered, raw.stmt_location or 0)
    return 0


_REFUSALS: dict[tuple[str, str], list[LintProblem]] = {}


def template_refusals(template: Template) -> list[LintProblem]:
    """The problems ``apply`` refuses this file for (remembered per checksum: linting is the slow part)."""
    key = (template.checksum, template.filename)
    cached = _REFUSALS.get(key)
    if cached is None:
        cached = [p for p in template_lint(template) if p.rule in BLOCKING_RULES]
        if len(_REFUSALS) > 1000:
            _REFUSALS.clear()
        _REFUSALS[key] = cached
    return cached
