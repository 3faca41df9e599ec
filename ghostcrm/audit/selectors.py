"""Reading the audit log: verifying the hash chain."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ghostcrm.audit.models import AuditChainHead, AuditEvent
from ghostcrm.audit.services import GENESIS_HASH, compute_hash, event_hash_fields


@dataclass(frozen=True)
class ChainReport:
    checked: int
    broken_at: int | None = None  # sequence number of the first bad link
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_chain_verify(*, progress: Callable[[int], None] | None = None, chunk_size: int = 2000) -> ChainReport:
    """Walk the chain in order and report the first link that does not hold."""
    expected_sequence, previous_hash, checked = 1, GENESIS_HASH, 0
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=chunk_size):
        if event.sequence != expected_sequence:
            return ChainReport(
                checked, expected_sequence, f"event #{expected_sequence} is missing (deleted from the log)"
            )
        if event.prev_hash != previous_hash:
            return ChainReport(checked, event.sequence, f"event #{event.sequence} does not link to the event before it")
        if compute_hash(event_hash_fields(event)) != event.hash:
            return ChainReport(
                checked, event.sequence, f"event #{event.sequence} was altered after it was written (hash mismatch)"
            )
        previous_hash, expected_sequence, checked = event.hash, expected_sequence + 1, checked + 1
        if progress is not None:
            progress(1)
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None:
        if checked:
            return ChainReport(checked, checked + 1, "the chain's head row is missing")
        return ChainReport(0)
    if head.sequence != checked or head.hash != previous_hash:
        return ChainReport(
            checked,
            checked + 1,
            f"the chain ends at #{checked} but its head records #{head.sequence}: events were removed",
        )
    return ChainReport(checked)
