"""Small inline SVG charts for the admin's dashboards: no JavaScript, nothing from another host, printable.

Two shapes cover the dashboards:

- ``column_chart``: one slot per x label, with one column per series in it (several series overlap, each inset
  by its own margin: p95 behind p50, or gains up and losses down around a zero line when values are negative);
- ``bar_chart``: horizontal bars, one per named item, with the value written after each bar.

Every text is escaped; values are formatted by the caller's ``value_text`` (money, durations, counts), so the
module knows nothing of currencies or units. Margins grow with the longest label (estimated from the font size,
as the server has no font metrics), so no label is clipped whatever font the browser picks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

POSITIVE, NEGATIVE, NEUTRAL, MUTED = "#2e7d32", "#c62828", "#1565c0", "#90caf9"
FONT_SIZE = 11
LABEL_FONT_SIZE = 10  # the x-axis labels
# The widest glyph advance in sans-serif at 1px (digits are ~0.56em, capitals up to ~0.72em): an
# over-estimate, so a margin computed from it never clips a label.
CHAR_EM = 0.66
ValueText = Callable[[float], str]


def text_width(text: str, size: int = FONT_SIZE) -> float:
    """An upper estimate of ``text``'s rendered width in SVG units."""
    return len(text) * size * CHAR_EM


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class Series:
    """One series of a column chart: a value per x label (``None``: no column there).

    ``inset`` is the share of the slot left empty on each side of the column; ``notes`` (optional, one per
    label) are added to each column's tooltip, e.g. "(12 active)".
    """

    name: str
    values: Sequence[float | None]
    color: str = NEUTRAL
    inset: float = 0.15
    notes: Sequence[str] = field(default_factory=tuple)


def _svg(width: int, height: int, body: list[str], title: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every text in body went through escape()
        f'<svg class="gc-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="{FONT_SIZE}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int | None = None) -> str:
    sized = f' font-size="{size}"' if size else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{sized}>{escape(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, color: str, tooltip: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )


def _label_positions(
    count: int, every: int, at: Literal["center", "end"], left: float, slot: float
) -> list[tuple[int, float, str]]:
    """(index, x, anchor) of the x labels shown: every ``every``-th counted back from the last; ``end`` puts a
    label on the slot's right boundary (an instant, e.g. the end of an hour), the last one anchored at its end."""
    shown = []
    for i in range(count):
        if (count - 1 - i) % every:
            continue
        if at == "center":
            shown.append((i, left + (i + 0.5) * slot, "middle"))
        else:
            shown.append((i, left + (i + 1) * slot, "end" if i == count - 1 else "middle"))
    return shown


def column_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    value_text: ValueText = _number,
    label_every: int = 1,
    label_at: Literal["center", "end"] = "center",
    min_column: float = 0.0,
    width: int = 720,
    height: int = 240,
) -> SafeString:
    """Columns per x label. All values at or above zero: the axis runs from 0 to the largest value. Any value
    below zero: the axis is symmetric around a zero line, columns go up or down from it (gains and losses).

    ``min_column`` (SVG units) keeps a small non-zero value visible; ``label_every`` thins the x labels.
    """
    values = [value for one in series for value in one.values if value is not None]
    diverging = any(value < 0 for value in values)
    largest = max([abs(value) for value in values] + [0])
    extent = largest or 1  # the scale of an all-zero chart (its columns are empty)
    top_text = ("+" if diverging else "") + value_text(largest)
    bottom_text = value_text(-extent) if diverging else "0"
    left = int(max(text_width(top_text), text_width(bottom_text))) + 12
    top, bottom = 16, 8 + LABEL_FONT_SIZE + 6  # room for the x labels under the plot
    plot_h = height - top - bottom
    zero = top + plot_h / 2 if diverging else top + plot_h
    scale = (plot_h / 2 if diverging else plot_h) / extent
    slot = (width - left - 10) / max(len(labels), 1)
    body = [
        f'<line x1="{left}" y1="{zero:.1f}" x2="{width - 10}" y2="{zero:.1f}" stroke="#999"/>',
        _text(left - 6, top + 4, top_text, anchor="end"),
        _text(left - 6, top + plot_h, bottom_text, anchor="end"),
    ]
    for one in series:
        for i, (label, value) in enumerate(zip(labels, one.values, strict=True)):  # one value per label
            if value is None:
                continue
            h = max(abs(value) * scale, min_column if value else 0.0)
            x = left + i * slot + slot * one.inset
            y = zero - h if value >= 0 else zero
            note = f" {one.notes[i]}" if i < len(one.notes) and one.notes[i] else ""
            tooltip = f"{label}: {one.name} {value_text(value)}{note}"
            body.append(_rect(x, y, slot * (1 - 2 * one.inset), h, one.color, tooltip))
    for i, x, anchor in _label_positions(len(labels), max(label_every, 1), label_at, left, slot):
        body.append(_text(x, height - 6, labels[i], anchor=anchor, size=LABEL_FONT_SIZE))
    return _svg(width, height, body, title)


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value_text: ValueText = _number,
    color: str = NEUTRAL,
    name_chars: int = 28,
    width: int = 720,
) -> SafeString:
    """Horizontal bars, one per (name, value), the name before the bar (cut to ``name_chars``) and the value
    after it; the longest bar leaves room for the longest value."""
    row = 22
    height = max(len(items), 1) * row + 10
    top_value = max([value for _, value in items] + [0]) or 1
    shown = [(name[:name_chars], value_text(value)) for name, value in items]
    left = int(max([text_width(name) for name, _ in shown] + [0])) + 14
    room = int(max([text_width(text) for _, text in shown] + [0])) + 16
    body: list[str] = []
    for i, ((name, text), (full, value)) in enumerate(zip(shown, items, strict=True)):
        y = 5 + i * row
        bar_w = (width - left - room) * max(value, 0) / top_value
        body.append(_text(left - 8, y + 14, name, anchor="end"))
        body.append(_rect(left, y + 3, bar_w, row - 8, color, f"{full}: {text}"))
        body.append(_text(left + bar_w + 6, y + 14, text))
    return _svg(width, height, body, title)
