"""The accounts app's shape: modules a reader can hold in mind, imports at the top (no cycle papered over
inside a function), and tests that share helpers through modules made for it, not through each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ghostcrm" / "accounts"
TESTS = ROOT / "tests" / "accounts"
MAX_LINES = 500
# Imports a function may still make: AppConfig.ready (the app registry) and the organisation model, whose
# home is moving out of the tenants app.
ALLOWED_LOCAL_IMPORTS = {"ghostcrm.accounts.wiring", "tenants.models"}


def _app_modules() -> list[Path]:
    return sorted(p for p in APP.rglob("*.py") if "migrations" not in p.parts)


def _local_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ""
                if name == "ghostcrm.accounts":
                    name += "." + ",".join(alias.name for alias in node.names)
                found.append((node.lineno, name))
            elif isinstance(node, ast.Import):
                found.extend((node.lineno, alias.name) for alias in node.names)
    return found


@pytest.mark.parametrize("path", _app_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_modules_are_small_and_import_at_the_top(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_LINES
    local = [(line, name) for line, name in _local_imports(ast.parse(source)) if name not in ALLOWED_LOCAL_IMPORTS]
    assert local == []


def test_services_are_a_package_by_domain() -> None:
    modules = {p.stem for p in (APP / "services").glob("*.py")}
    assert {"passwords", "signin", "mfa", "sessions", "lockout", "invitations"} <= modules
    assert not (APP / "services.py").exists()


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_test_modules_do_not_import_each_other(path: Path) -> None:
    shared = {"tests.accounts.factories", "tests.accounts.helpers"}
    tree = ast.parse(path.read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {name for name in imported if name.startswith("tests")} <= shared
