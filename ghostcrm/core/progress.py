"""The one progress helper of the management commands.

On a terminal, a tqdm bar; off a terminal (a log, a pipe, CI), plain lines that read well in a log file:
one per item (or one per ``every`` items); in both cases a summary line at the end.

    with Progress(self.stdout, total=len(items), label="renewals") as progress:
        for item in items:
            ...
            progress.advance(item=item)

A service takes ``progress.advance`` as its ``progress`` callback.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import IO, Any

from tqdm import tqdm


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` (a file, or Django's OutputWrapper around one) is an interactive terminal."""
    isatty = getattr(_raw(stream), "isatty", None)
    return bool(callable(isatty) and isatty())


def _raw(stream: Any) -> IO[str]:
    # Django's OutputWrapper adds a line ending to every write, which would break a bar's carriage returns.
    return getattr(stream, "_out", stream)


class Progress:
    def __init__(
        self,
        stream: Any,
        *,
        total: int | None,
        label: str,
        unit: str = "item",
        enabled: bool = True,
        every: int = 1,
        summary: bool = True,
    ) -> None:
        self.stream, self.total, self.label, self.unit = stream, total, label, unit
        self.enabled, self.every, self.summary = enabled, max(every, 1), summary
        self.done = 0
        self._started = time.monotonic()
        self._bar = (
            tqdm(total=total, desc=label, unit=unit, file=_raw(stream)) if enabled and is_terminal(stream) else None
        )

    def advance(self, count: int = 1, item: object = "") -> None:
        before, self.done = self.done, self.done + count
        if self._bar is not None:
            self._bar.update(count)
        elif self.enabled and self.done // self.every != before // self.every:
            of_total = f"/{self.total}" if self.total is not None else ""
            self._write(f"{self.label}: {self.done}{of_total} {item}".rstrip())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled and self.summary:
            self._write(f"{self.label}: {self.done} {self.unit}(s) in {time.monotonic() - self._started:.1f} s")

    def _write(self, line: str) -> None:
        raw = _raw(self.stream)
        raw.write(line + "\n")
        raw.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
