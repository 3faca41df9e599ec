"""Parse the generated T-SQL scripts with sqlglot's T-SQL dialect, batch by batch.

sqlglot falls back to an opaque ``Command`` for statements it does not understand, and its T-SQL
control-of-flow support is partial (an ``IF … BEGIN … END`` block swallows the statements after it). So
each batch is split into the fixed guard the exporter writes and the payload after it, and both are parsed
on their own; a ``Command`` anywhere counts as a failure unless its statement kind is listed in EXCUSED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from ghostcrm.mssql.export import batch_guard, split_batches

HEADER_RE = re.compile(r"^-- GhostCRM main database, script \d+: Django migration ([^.\s]+)\.(\S+)$", re.M)
INNER_SQL_RE = re.compile(r"^EXECUTE sp_executesql N'(.*)';$", re.S)

# Statement kinds sqlglot 30.30 leaves unparsed (``Command``) although they are valid T-SQL: none are
# written today. (The exporter avoids PRINT, THROW and ELSE, which sqlglot does not parse, in favour of
# RAISERROR and CASE.)
EXCUSED: dict[str, str] = {}

# Valid T-SQL that mssql-django writes and sqlglot 30.30 rejects. Before parsing, the checker rewrites
# exactly these constructs into an equivalent form sqlglot accepts; everything else is parsed as written.
REWRITTEN = {
    "UNIQUE before another column constraint": "`[c] bigint NOT NULL UNIQUE CONSTRAINT x CHECK (…)` (mssql-django "
    "puts the positive-integer and ISJSON checks after UNIQUE); SQL Server takes column constraints in any "
    "order, sqlglot only when UNIQUE comes last, so UNIQUE is moved to the end of that column's definition.",
    "DEFAULT … WITH VALUES": "`ALTER TABLE t ADD c type DEFAULT x WITH VALUES` (mssql-django's AddField of a "
    "nullable column with a default: existing rows get the default); sqlglot does not know WITH VALUES, so "
    "those two words are removed.",
}
_WITH_VALUES_RE = re.compile(r"(ALTER TABLE \S+ ADD .* DEFAULT .*) WITH VALUES(;?)$", re.S)


def _move_unique_last(sql: str) -> str:
    """Move a column-level UNIQUE that precedes CONSTRAINT/CHECK to the end of its column definition."""
    out, i, depth = [], 0, 0
    pending: int | None = None  # depth of the column definition whose UNIQUE was taken out
    while i < len(sql):
        ch = sql[i]
        if ch == "'":  # copy string literals unchanged
            end = i + 1
            while end < len(sql) and not (sql[end] == "'" and sql[end + 1 : end + 2] != "'"):
                end += 2 if sql[end] == "'" else 1
            out.append(sql[i : end + 1])
            i = end + 1
            continue
        if pending is not None and depth == pending and ch in ",)":
            out.append(" UNIQUE")
            pending = None
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if depth <= 1 and re.match(r" UNIQUE (CONSTRAINT|CHECK)\b", sql[i:]):
            pending = depth
            i += len(" UNIQUE")
            continue
        out.append(ch)
        i += 1
    if pending is not None:  # ALTER TABLE … ADD column: the definition runs to the end
        text = "".join(out).rstrip()
        return text[:-1] + " UNIQUE;" if text.endswith(";") else text + " UNIQUE"
    return "".join(out)


def _rewrite_for_sqlglot(sql: str) -> str:
    sql = _move_unique_last(sql)
    return _WITH_VALUES_RE.sub(r"\1\2", sql)


# What a payload statement may parse to.
PAYLOAD_KINDS = (
    exp.Create,
    exp.Alter,
    exp.Drop,
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Declare,
    exp.Select,
    exp.Set,
    exp.IfBlock,
    exp.Execute,
    exp.ExecuteSql,
    exp.Rollback,
    exp.Anonymous,  # RAISERROR (…)
    exp.Column,  # RETURN, which sqlglot reads as a bare name
    exp.EndStatement,
)


@dataclass(frozen=True)
class SyntaxProblem:
    script: str
    batch: int
    message: str

    def __str__(self) -> str:
        return f"{self.script} batch {self.batch}: {self.message}"


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()


def parse_strict(sql: str) -> list[exp.Expr]:
    """Parse ``sql`` as T-SQL; raise ParseError on errors or on any statement sqlglot could not understand."""
    parsed = sqlglot.parse(_rewrite_for_sqlglot(sql), read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
    statements = [s for s in parsed if s is not None]
    for statement in statements:
        for node in statement.walk():
            if isinstance(node, exp.Command):
                kind = str(node.this).upper()
                if kind not in EXCUSED:
                    raise ParseError(f"sqlglot could not parse this {kind} statement: {node.sql('tsql')[:160]}")
    return statements


def check_script(path: Path) -> list[SyntaxProblem]:
    text = path.read_text(encoding="utf-8")
    problems: list[SyntaxProblem] = []
    header = HEADER_RE.search(text)
    if header is None:
        return [SyntaxProblem(path.name, 0, "no '-- GhostCRM main database, script NNN: Django migration' header")]
    guard = batch_guard(header.group(1), header.group(2)).strip()
    batches = split_batches(text)
    for number, batch in enumerate(batches):
        body = _strip_comments(batch)
        if not body:
            continue
        try:
            if number >= 2 and number < len(batches) - 1:  # statement batches: guard, then the payload
                if not body.startswith(guard):
                    problems.append(SyntaxProblem(path.name, number, "does not start with the migration's guard"))
                    continue
                parse_strict(guard)
                payload = body[len(guard) :].strip()
                for statement in parse_strict(payload):
                    if not isinstance(statement, PAYLOAD_KINDS):
                        raise ParseError(f"unexpected statement kind {type(statement).__name__}")
                inner = INNER_SQL_RE.match(payload)
                if inner:  # RunSQL: check the SQL that sp_executesql will run, too
                    parse_strict(inner.group(1).replace("''", "'"))
            else:
                parse_strict(body)
        except ParseError as exc:
            problems.append(SyntaxProblem(path.name, number, " ".join(str(exc).split())[:300]))
    return problems
