"""The one progress helper: a bar on a terminal, plain lines elsewhere, a summary at the end."""

from __future__ import annotations

import io

from django.core.management.base import OutputWrapper

from ghostcrm.core.progress import Progress, is_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_one_line_per_item_then_a_summary() -> None:
    out = io.StringIO()
    with Progress(OutputWrapper(out), total=3, label="renewals") as progress:
        for item in ("sub-1", "sub-2", "sub-3"):
            progress.advance(item=item)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["renewals: 1/3 sub-1", "renewals: 2/3 sub-2", "renewals: 3/3 sub-3"]
    assert lines[3].startswith("renewals: 3 item(s) in ")
    assert len(lines) == 4


def test_every_n_items_and_batches() -> None:
    out = io.StringIO()
    with Progress(out, total=None, label="audit_verify", unit="event", every=1000) as progress:
        for _ in range(5):
            progress.advance(700)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["audit_verify: 1400", "audit_verify: 2100", "audit_verify: 3500"]
    assert lines[3].startswith("audit_verify: 3500 event(s) in ")


def test_on_a_terminal_a_bar_and_no_item_lines() -> None:
    out = Terminal()
    assert is_terminal(OutputWrapper(out))
    with Progress(OutputWrapper(out), total=2, label="rotate") as progress:
        progress.advance(item="a")
        progress.advance(item="b")
    text = out.getvalue()
    assert "rotate: 1/2 a" not in text
    assert "2/2" in text  # tqdm's bar
    assert "rotate: 2 item(s) in " in text


def test_disabled_writes_nothing() -> None:
    out = Terminal()
    with Progress(out, total=2, label="quiet", enabled=False) as progress:
        progress.advance()
    assert out.getvalue() == ""
    assert progress.done == 1
