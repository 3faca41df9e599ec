"""What keeps the main database portable to SQL Server (mssql-django), PostgreSQL and SQLite.

``model_problems`` walks main-database models and names every field, index or constraint that
mssql-django cannot create, or creates with different behaviour than PostgreSQL. ``source_problems``
scans Python source for ORM usage that does not work the same on SQL Server: JSON lookups (mssql-django
has no ``__contains``/``__contained_by`` on JSONField, and key lookups compare differently on each
backend) and ``select_for_update`` options mssql-django refuses (``of=``, ``no_key=``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.apps import apps as global_apps
from django.db import models
from django.db.models import Q

from ghostcrm.mssql.offline import OfflineDatabaseWrapper
from ghostcrm.routers import database_for_model

# SQL Server's limits on index keys (bytes): 900 for a clustered index (the primary key), 1700 otherwise.
CLUSTERED_KEY_LIMIT = 900
NONCLUSTERED_KEY_LIMIT = 1700
# Filtered indexes (conditional unique constraints, Index(condition=…)) take simple comparisons only.
FILTER_LOOKUPS = {"exact", "isnull", "in", "gt", "gte", "lt", "lte"}
# Querysets methods and expressions whose string arguments or keyword names are ORM paths.
PATH_KWARG_CALLS = {"filter", "exclude", "get", "get_or_create", "update_or_create", "Q", "update"}
PATH_ARG_CALLS = {"order_by", "values", "values_list", "only", "defer", "distinct", "F", "OuterRef", "KT"}
# A line that must do what this scan forbids (a test proving mssql-django refuses it) says why.
EXEMPT_RE = re.compile(r"#\s*sqlserver-exempt:\s*\S")
UNSUPPORTED_JSON_LOOKUPS = {"contains", "contained_by", "has_key", "has_keys", "has_any_keys"}
JSON_EXPRESSIONS = {"KT", "KeyTextTransform", "KeyTransform", "HasKey", "HasKeys", "HasAnyKeys", "DataContains"}


def main_database_models(app_registry: Any = global_apps) -> list[type[models.Model]]:
    """Every concrete model the router puts in the main database (the tables mssql-django creates)."""
    return [
        model
        for model in app_registry.get_models(include_auto_created=True)
        if database_for_model(model) == "default"
        and model._meta.managed
        and not model._meta.proxy
        and not model._meta.swapped
    ]


def _key_bytes(field: Any, connection: OfflineDatabaseWrapper) -> int | None:
    """Bytes one value of ``field`` takes in an index key on SQL Server; None when it cannot be indexed."""
    db_type = (field.db_type(connection=connection) or "").lower()
    if "(max)" in db_type:
        return None
    sizes = {"bigint": 8, "int": 4, "smallint": 2, "bit": 1, "datetimeoffset": 10, "datetime2": 8, "date": 3,
             "time": 5, "double precision": 8, "real": 4, "uniqueidentifier": 16}  # fmt: skip
    if db_type in sizes:
        return sizes[db_type]
    kind, _, rest = db_type.partition("(")
    number = rest.split(",")[0].rstrip(")").strip()
    if kind in {"nvarchar", "nchar"} and number.isdigit():
        return 2 * int(number)
    if kind in {"varchar", "char", "varbinary", "binary"} and number.isdigit():
        return int(number)
    if kind == "numeric":
        return 17
    return 8


def _q_problems(condition: Q, model: type[models.Model], where: str) -> list[str]:
    """A filtered index predicate must be ANDed simple comparisons on plain columns."""
    problems = []
    if condition.connector != Q.AND or condition.negated:
        problems.append(f"{where}: the condition uses OR or NOT, which a SQL Server filtered index cannot express")
    for child in condition.children:
        if isinstance(child, Q):
            problems += _q_problems(child, model, where)
            continue
        if not isinstance(child, tuple):
            problems.append(f"{where}: the condition uses an expression; a filtered index takes plain comparisons")
            continue
        parts = child[0].split("__")
        lookup = parts[-1] if len(parts) > 1 and parts[-1] in FILTER_LOOKUPS else "exact"
        path = parts[:-1] if len(parts) > 1 and parts[-1] in FILTER_LOOKUPS else parts
        if len(path) != 1 or lookup not in FILTER_LOOKUPS:
            problems.append(f"{where}: the condition {child[0]!r} is not a simple column comparison")
        elif hasattr(child[1], "resolve_expression"):
            problems.append(f"{where}: the condition {child[0]!r} compares with an expression, not a constant")
    return problems


def model_problems(model_list: Iterable[type[models.Model]]) -> list[str]:
    """Every field, index and constraint mssql-django cannot create as the other backends do."""
    connection = OfflineDatabaseWrapper()
    problems: list[str] = []
    for model in model_list:
        opts: Any = model._meta
        label = opts.label

        def key_size(
            columns: list[Any], where: str, limit: int = NONCLUSTERED_KEY_LIMIT, out: list[str] = problems
        ) -> None:
            sizes = [_key_bytes(f, connection) for f in columns]
            if any(size is None for size in sizes):
                names = ", ".join(f.name for f, s in zip(columns, sizes, strict=True) if s is None)
                out.append(
                    f"{where}: {names} is nvarchar(max)/varbinary(max) on SQL Server, which cannot be in an index key; "
                    "give it a max_length"
                )
            elif sum(s or 0 for s in sizes) > limit:
                out.append(
                    f"{where}: the index key is {sum(s or 0 for s in sizes)} bytes on SQL Server (limit {limit}); "
                    "shorten the columns"
                )

        for field in opts.local_concrete_fields:
            where = f"{label}.{field.name}"
            module = type(field).__module__
            if module.startswith("django.contrib.postgres"):
                problems.append(f"{where}: {type(field).__name__} exists only on PostgreSQL")
                continue
            try:
                db_type = field.db_type(connection=connection)
            except Exception as exc:  # a field type mssql-django cannot map
                problems.append(f"{where}: mssql-django cannot give it a column type ({exc})")
                continue
            if db_type is None and not field.remote_field:
                problems.append(f"{where}: mssql-django has no column type for {type(field).__name__}")
                continue
            if db_type and "None" in db_type:
                problems.append(f"{where}: the SQL Server column type would be {db_type!r}; set max_length")
            if getattr(field, "db_collation", None):
                problems.append(
                    f"{where}: db_collation={field.db_collation!r} names a collation of one server; "
                    "collation names differ between SQL Server, PostgreSQL and SQLite"
                )
            if field.primary_key:
                key_size([field], f"{where} (primary key)", CLUSTERED_KEY_LIMIT)
            elif field.unique or field.db_index:
                key_size([field], f"{where} ({'unique' if field.unique else 'db_index'})")
        for field_names in opts.unique_together:
            key_size([opts.get_field(n) for n in field_names], f"{label} unique_together {tuple(field_names)}")
        for index in opts.indexes:
            where = f"{label} index {index.name!r}"
            if type(index).__module__.startswith("django.contrib.postgres"):
                problems.append(f"{where}: {type(index).__name__} exists only on PostgreSQL")
                continue
            if index.contains_expressions:
                problems.append(f"{where}: mssql-django does not create expression indexes (it skips them silently)")
                continue
            if index.opclasses:
                problems.append(f"{where}: opclasses exist only on PostgreSQL")
            if index.condition is not None:
                problems += _q_problems(index.condition, model, where)
            key_size([opts.get_field(name) for name, _ in index.fields_orders], where)
        for constraint in opts.constraints:
            where = f"{label} constraint {constraint.name!r}"
            if type(constraint).__module__.startswith("django.contrib.postgres"):
                problems.append(f"{where}: {type(constraint).__name__} exists only on PostgreSQL")
                continue
            if not isinstance(constraint, models.UniqueConstraint):
                continue
            unique: Any = constraint
            if unique.contains_expressions:
                problems.append(
                    f"{where}: mssql-django does not create expression unique constraints (skipped silently)"
                )
                continue
            if constraint.deferrable is not None:
                problems.append(f"{where}: SQL Server has no deferrable constraints (mssql-django skips it silently)")
            if getattr(constraint, "nulls_distinct", None) is not None:
                problems.append(f"{where}: nulls_distinct is not supported by mssql-django (skipped silently)")
            if unique.opclasses:
                problems.append(f"{where}: opclasses exist only on PostgreSQL")
            fields = [opts.get_field(name) for name in constraint.fields]
            if constraint.condition is not None:
                problems += _q_problems(constraint.condition, model, where)
            else:
                nullable = [f.name for f in fields if f.null]
                if nullable:
                    problems.append(
                        f"{where}: {', '.join(nullable)} can be NULL and SQL Server's unique constraint allows only "
                        "one NULL (PostgreSQL and SQLite allow many); add condition=Q("
                        + ", ".join(f"{n}__isnull=False" for n in nullable)
                        + ")"
                    )
            key_size(fields, where)
    return problems


# --- source scan ----------------------------------------------------------------------------------------


def _json_paths(model_list: list[type[models.Model]]) -> set[str]:
    """Every ORM path from a main-database model that ends at a JSONField (``settings``, ``org__settings``)."""
    found: set[str] = set()

    def walk(model: Any, prefix: str, depth: int) -> None:
        for field in model._meta.get_fields():
            name = getattr(field, "name", "")
            if isinstance(field, models.JSONField):
                found.add(prefix + name)
            elif field.is_relation and field.related_model is not None and depth < 2 and name:
                walk(field.related_model, f"{prefix}{name}__", depth + 1)

    for model in model_list:
        walk(model, "", 0)
    return found


def json_lookup_of(path: str, json_paths: set[str]) -> str | None:
    """The JSON part of ``path`` when it looks into a JSONField (anything after it but ``isnull``)."""
    parts = path.split("__")
    for i in range(1, len(parts)):
        if "__".join(parts[:i]) in json_paths:
            rest = parts[i:]
            if rest != ["isnull"]:
                return "__".join(rest)
    return None


def json_lookup_unsupported(json_part: str) -> bool:
    """True for the JSON lookups mssql-django refuses or runs differently.

    ``contains``/``contained_by`` raise NotSupportedError (``supports_json_field_contains = False``); the
    ``has_key`` family is written as ``JSON_VALUE(...) IS NOT NULL`` before SQL Server 2022, which misses keys
    holding null, an object or an array. Plain key lookups (``after__reason="x"``) run as JSON_VALUE.
    """
    return bool(set(json_part.split("__")) & UNSUPPORTED_JSON_LOOKUPS)


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    if isinstance(node.func, ast.Name):
        return node.func.id
    return ""


def _paths_in_call(node: ast.Call) -> Iterator[str]:
    name = _call_name(node)
    if name in PATH_KWARG_CALLS:
        for keyword in node.keywords:
            if keyword.arg is not None:
                yield keyword.arg
            elif isinstance(keyword.value, ast.Dict):  # filter(**{"a__b": 1})
                for key in keyword.value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        yield key.value
        for arg in node.args:  # Q(("a__b", 1)) is rare; Q("a__b") is not valid, so only tuples
            first = arg.elts[0] if isinstance(arg, ast.Tuple) and arg.elts else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value
    if name in PATH_ARG_CALLS:
        for arg in node.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value.lstrip("-")


def source_problems(
    source: str, filename: str, model_list: list[type[models.Model]], *, application_code: bool = True
) -> list[str]:
    """JSON lookups on main-database JSONFields and select_for_update options mssql-django refuses.

    Application code may not look inside JSONFields at all (STYLE: no JSON lookups in queries); tests may
    use the key lookups mssql-django runs (JSON_VALUE), but not the ones it refuses or runs differently.
    """
    json_paths = _json_paths(model_list)
    tree = ast.parse(source, filename=filename)
    lines = source.splitlines()
    problems = []
    for node in ast.walk(tree):
        line = lines[node.lineno - 1] if hasattr(node, "lineno") and 0 < node.lineno <= len(lines) else ""
        if EXEMPT_RE.search(line):  # reviewed on purpose, e.g. a test proving that SQL Server refuses it
            continue
        if application_code and isinstance(node, ast.ImportFrom) and node.module and "fields.json" in node.module:
            names = [alias.name for alias in node.names if alias.name in JSON_EXPRESSIONS]
            if names:
                problems.append(f"{filename}:{node.lineno}: imports JSON lookup expressions {', '.join(names)}")
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if (
            name in JSON_EXPRESSIONS
            and name != "KT"
            and (application_code or name in {"HasKey", "HasKeys", "HasAnyKeys", "DataContains"})
        ):
            problems.append(f"{filename}:{node.lineno}: {name}(…) is a JSON lookup")
        for path in _paths_in_call(node):
            json_part = json_lookup_of(path, json_paths)
            if json_part is None:
                continue
            if json_lookup_unsupported(json_part):
                problems.append(
                    f"{filename}:{node.lineno}: {name}({path!r}) uses a JSON lookup mssql-django refuses or runs "
                    f"differently ({json_part!r}): contains/contained_by raise NotSupportedError on SQL Server, "
                    "has_key misses keys holding null, objects or arrays before SQL Server 2022"
                )
            elif application_code:
                problems.append(
                    f"{filename}:{node.lineno}: {name}({path!r}) looks inside a JSONField ({json_part!r}); "
                    "main-database queries must not (key lookups compare differently on SQL Server, PostgreSQL "
                    "and SQLite): store what you query in its own column"
                )
        if name == "select_for_update":
            for keyword in node.keywords:
                if keyword.arg in {"of", "no_key"}:
                    problems.append(
                        f"{filename}:{node.lineno}: select_for_update({keyword.arg}=…) is refused by mssql-django "
                        "(NotSupportedError on SQL Server); lock the rows with a plain select_for_update()"
                    )
    return problems


def project_source_files(root: Path) -> list[Path]:
    """The project's own Python files (not the virtualenv, migrations or benchmarks' reports)."""
    skip = {".venv", "node_modules", "migrations", "reports", "__pycache__", ".git"}
    return sorted(p for p in root.rglob("*.py") if not (set(p.relative_to(root).parts) & skip))


def project_source_problems(root: Path, model_list: list[type[models.Model]] | None = None) -> list[str]:
    model_list = model_list if model_list is not None else main_database_models()
    problems = []
    for path in project_source_files(root):
        rel = path.relative_to(root)
        is_test = rel.parts[0] == "tests" or rel.name.startswith("test_") or rel.name == "conftest.py"
        problems += source_problems(
            path.read_text(encoding="utf-8"), str(rel), model_list, application_code=not is_test
        )
    return problems
