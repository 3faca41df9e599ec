"""Concurrent writers form one chain: the head row is locked while appending (FOR UPDATE; UPDLOCK on SQL Server).

Real threads, each with its own connection, committing for real. Left out of the SQLite run (``server_db``):
its in-memory test database answers a concurrent writer with "table is locked" instead of waiting.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connections, transaction

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.audit.services import Actor, audit_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.server_db]

WRITERS, EVENTS_EACH = 6, 15


def test_concurrent_writers_form_one_unbroken_chain() -> None:
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            for n in range(EVENTS_EACH):
                # Half inside a caller's transaction that does more work after recording, as services do.
                if n % 2:
                    with transaction.atomic():
                        audit_record(action="tests.concurrent", actor=Actor.system(f"writer-{number}"))
                        AuditEvent.objects.filter(action="tests.concurrent").count()
                else:
                    audit_record(action="tests.concurrent", actor=Actor.system(f"writer-{number}"))
        except BaseException as exc:  # asserted on below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer did not finish within 120 s"
    assert failures == []

    total = WRITERS * EVENTS_EACH
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    labels = AuditEvent.objects.values_list("actor_label", flat=True)
    assert sorted(set(labels)) == [f"writer-{i}" for i in range(WRITERS)]
    report = audit_chain_verify()
    assert report.ok and report.checked == total
