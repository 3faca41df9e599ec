"""Concurrent writers append without waiting for one another; the sealer chains them into one unbroken chain.

Real threads, each with its own connection, committing for real. Left out of the SQLite run (``server_db``):
its in-memory test database answers a concurrent writer with "table is locked" instead of waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections, transaction

from ghostcrm.audit.jobs import audit_seal_job
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.sealing import audit_seal
from ghostcrm.audit.selectors import audit_chain_verify
from ghostcrm.audit.services import Actor, audit_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.server_db]

WRITERS, EVENTS_EACH = 6, 15


def _own_connection(work: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    return run


def test_a_writer_does_not_wait_for_another_writers_open_transaction() -> None:
    """The old design locked one head row per write until the writer's transaction ended: this would hang."""
    recorded, other_done = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with transaction.atomic():
            audit_record(action="tests.slow")
            recorded.set()
            # Held open until the other writer has committed (bounded, so a regression fails, not hangs).
            other_done.wait(timeout=30)

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(_own_connection(slow_writer))
        assert recorded.wait(timeout=30)
        try:
            audit_record(action="tests.fast")  # commits at once (autocommit) while the slow transaction is open
            committed_while_open = not slow.done()  # with a shared lock, this write would have waited 30 s
        finally:
            other_done.set()
        slow.result(timeout=60)
    assert committed_while_open
    # Both committed now: sealed in the order they were appended.
    assert audit_seal().sealed == 2
    actions = AuditEvent.objects.order_by("sequence").values_list("action", flat=True)
    assert list(actions) == ["tests.slow", "tests.fast"]
    assert audit_chain_verify().ok


def test_concurrent_writers_and_a_sealer_form_one_unbroken_chain() -> None:
    barrier = threading.Barrier(WRITERS + 1)
    writing = threading.Event()

    def writer(number: int) -> None:
        barrier.wait(timeout=30)
        for n in range(EVENTS_EACH):
            # Half inside a caller's transaction that does more work after recording, as services do.
            if n % 2:
                with transaction.atomic():
                    audit_record(action="tests.concurrent", actor=Actor.system(f"writer-{number}"))
                    AuditEvent.objects.filter(action="tests.concurrent").count()
            else:
                audit_record(action="tests.concurrent", actor=Actor.system(f"writer-{number}"))

    def sealer() -> None:
        barrier.wait(timeout=30)
        while writing.is_set():
            audit_seal()

    writing.set()
    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        seal_future = pool.submit(_own_connection(sealer))
        writers = [pool.submit(_own_connection(lambda i=i: writer(i))) for i in range(WRITERS)]
        try:
            for future in writers:
                future.result(timeout=120)  # a writer's exception is raised here
        finally:
            writing.clear()
        seal_future.result(timeout=60)

    audit_seal_job()
    total = WRITERS * EVENTS_EACH
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, total + 1))
    labels = AuditEvent.objects.values_list("actor_label", flat=True)
    assert sorted(set(labels)) == [f"writer-{i}" for i in range(WRITERS)]
    report = audit_chain_verify()
    assert report.ok
    assert report.checked == total
    assert report.alarms == ()
