"""Upgrading a log written under the unkeyed SHA-256 chain: the migration re-seals it with the audit key."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ghostcrm.audit import keys
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.sealing import link_fields

ROOT = Path(__file__).resolve().parents[2]
LEGACY_FIELDS = (
    "sequence", "occurred_at", "actor_type", "actor_id", "actor_label", "action", "target_type", "target_id",
    "target_repr", "organization_id", "before", "after", "ip_address", "user_agent", "request_id", "outcome",
    "message", "duration_ms", "prev_hash",
)  # fmt: skip


def manage(*args: str, main: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ghostcrm.settings", "GHOSTCRM_ENV": "development"}
    env["MAIN_DATABASE_URL"] = f"sqlite:///{main}"
    return subprocess.run(
        [sys.executable, "manage.py", *args, "--database", "default"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def write_legacy_chain(main: Path, count: int) -> None:
    """Events as the old code wrote them: sequence, prev_hash, and a plain SHA-256 over the fields."""
    previous = "0" * 64
    with sqlite3.connect(main) as conn:
        for sequence in range(1, count + 1):
            at = dt.datetime(2026, 1, 1, 12, 0, sequence, tzinfo=dt.UTC)
            fields = {name: None for name in LEGACY_FIELDS} | {
                "sequence": sequence, "occurred_at": at.isoformat(timespec="microseconds"), "actor_type": "system",
                "actor_id": "", "actor_label": "system", "action": f"legacy.{sequence}", "target_type": "",
                "target_id": "", "target_repr": "", "user_agent": "", "request_id": "", "outcome": "success",
                "message": "", "prev_hash": previous,
            }  # fmt: skip
            digest = hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            conn.execute(
                "INSERT INTO audit_auditevent (sequence, occurred_at, actor_type, actor_id, actor_label, action, "
                "target_type, target_id, target_repr, user_agent, request_id, outcome, message, prev_hash, hash) "
                "VALUES (?, ?, 'system', '', 'system', ?, '', '', '', '', '', 'success', '', ?, ?)",
                [sequence, at.isoformat(" "), f"legacy.{sequence}", previous, digest],
            )
            previous = digest
        conn.execute("UPDATE audit_auditchainhead SET sequence = ?, hash = ? WHERE id = 1", [count, previous])


def read_events(main: Path) -> list[AuditEvent]:
    with sqlite3.connect(main) as conn:
        rows = conn.execute(
            "SELECT sequence, occurred_at, action, prev_hash, hash, key_id FROM audit_auditevent ORDER BY sequence"
        ).fetchall()
    return [
        AuditEvent(
            sequence=seq,
            occurred_at=dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC),
            actor_type="system",
            actor_label="system",
            action=action,
            outcome="success",
            prev_hash=prev,
            hash=digest,
            key_id=key_id,
        )
        for seq, at, action, prev, digest, key_id in rows
    ]


@pytest.fixture
def legacy_database(tmp_path: Path) -> Path:
    main = tmp_path / "main.sqlite3"
    result = manage("migrate", "audit", "0001_initial", main=main)
    assert result.returncode == 0, result.stderr
    return main


def test_an_intact_legacy_chain_is_resealed_with_the_key(legacy_database: Path) -> None:
    write_legacy_chain(legacy_database, 4)
    result = manage("migrate", "audit", main=legacy_database)
    assert result.returncode == 0, result.stderr
    events = read_events(legacy_database)
    assert [e.key_id for e in events] == ["dev"] * 4
    previous = "0" * 64
    for event in events:
        assert event.prev_hash == previous
        assert event.hash == keys.sign(keys.AuditKey("dev", b"development-only-audit-key"), link_fields(event))
        previous = event.hash or ""


def test_a_broken_legacy_chain_is_not_laundered(legacy_database: Path) -> None:
    write_legacy_chain(legacy_database, 3)
    with sqlite3.connect(legacy_database) as conn:
        conn.execute("UPDATE audit_auditevent SET action = 'edited' WHERE sequence = 2")
    result = manage("migrate", "audit", main=legacy_database)
    assert result.returncode != 0
    assert "The audit chain is broken at event #2" in result.stderr
