"""Progress for billing commands: a tqdm bar on a terminal, one line per item otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tqdm import tqdm


def progress_reporter(stdout: Any, *, total: int, label: str) -> tuple[Callable[[Any], None], Callable[[], None]]:
    if getattr(stdout, "isatty", lambda: False)():
        bar = tqdm(total=total, desc=label, unit="item", file=stdout)

        def tick(item: Any) -> None:
            bar.update(1)

        return tick, bar.close
    done = {"n": 0}

    def line(item: Any) -> None:
        done["n"] += 1
        stdout.write(f"{label}: {done['n']}/{total} {item}")

    return line, lambda: None
