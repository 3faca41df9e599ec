"""Small inline SVG charts for the revenue dashboard: no JavaScript, no CDN, printable, readable offline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.money import format_money

POSITIVE, NEGATIVE, NEUTRAL = "#2e7d32", "#c62828", "#1565c0"
FONT_SIZE = 11  # the SVG's font size; month labels under the columns use MONTH_FONT_SIZE
MONTH_FONT_SIZE = 10
# The widest glyph advance in sans-serif at 1px (digits are ~0.56em, capitals up to ~0.72em): an
# over-estimate, so a margin computed from it never clips a label, whatever font the browser picks.
CHAR_EM = 0.66


def _nice_max(value: int) -> int:
    return max(value, 1)


def text_width(text: str, size: int = FONT_SIZE) -> float:
    """An upper estimate of ``text``'s rendered width in SVG units (no font metrics on the server)."""
    return len(text) * size * CHAR_EM


def month_label(label: str) -> str:
    """ "2025-12" -> "Dec 2025"; any other label is shown as given."""
    try:
        return dt.datetime.strptime(label, "%Y-%m").strftime("%b %Y")
    except ValueError:
        return label


def _y_axis_left(labels: Sequence[str]) -> int:
    """The plot's left edge: room for the longest y-axis label (right-aligned 6 units before it) plus a gap."""
    return int(max(text_width(label) for label in labels)) + 12


def _svg(width: int, height: int, body: list[str], title: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every label below goes through escape()
        f'<svg class="gc-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="{FONT_SIZE}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _month_text(x: float, y: float, label: str) -> str:
    return (
        f'<text x="{x:.1f}" y="{y}" text-anchor="middle" font-size="{MONTH_FONT_SIZE}">'
        f"{escape(month_label(label))}</text>"
    )


def column_chart(labels: Sequence[str], values: Sequence[int], *, currency: str, title: str) -> SafeString:
    """One column per label (e.g. MRR at each month's end)."""
    width, height, bottom, top = 720, 240, 40, 16
    top_value = _nice_max(max([0, *values]))
    top_text = format_money(top_value, currency)
    left = _y_axis_left([top_text, "0"])
    plot_h = height - bottom - top
    slot = (width - left - 10) / max(len(values), 1)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{escape(top_text)}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar_h = plot_h * max(value, 0) / top_value
        x = left + i * slot + slot * 0.15
        y = height - bottom - bar_h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" fill="{NEUTRAL}">'
            f"<title>{escape(month_label(label))}: {escape(format_money(value, currency))}</title></rect>"
        )
        body.append(_month_text(x + slot * 0.35, height - bottom + 14, label))
    return _svg(width, height, body, title)


def diverging_chart(
    labels: Sequence[str], gains: Sequence[int], losses: Sequence[int], *, currency: str, title: str
) -> SafeString:
    """Per label, a green column up (new + expansion + reactivation) and a red column down (churn + contraction)."""
    width, height, pad = 720, 260, 24
    extent = _nice_max(max([0, *gains, *(-v for v in losses)]))
    up_text, down_text = f"+{format_money(extent, currency)}", f"-{format_money(extent, currency)}"
    left = _y_axis_left([up_text, down_text])
    # The month labels sit below the lower half, so the plot leaves them their own row.
    zero = (height - 14) / 2
    half = zero - pad
    slot = (width - left - 10) / max(len(labels), 1)
    body = [
        f'<line x1="{left}" y1="{zero}" x2="{width - 10}" y2="{zero}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{pad + 4}" text-anchor="end">{escape(up_text)}</text>',
        f'<text x="{left - 6}" y="{zero + half}" text-anchor="end">{escape(down_text)}</text>',
    ]
    for i, (label, gain, loss) in enumerate(zip(labels, gains, losses, strict=True)):
        x = left + i * slot + slot * 0.2
        up, down = half * gain / extent, half * (-loss) / extent
        shown = escape(month_label(label))
        body.append(
            f'<rect x="{x:.1f}" y="{zero - up:.1f}" width="{slot * 0.6:.1f}" height="{up:.1f}" fill="{POSITIVE}">'
            f"<title>{shown} new MRR: {escape(format_money(gain, currency))}</title></rect>"
        )
        body.append(
            f'<rect x="{x:.1f}" y="{zero:.1f}" width="{slot * 0.6:.1f}" height="{down:.1f}" fill="{NEGATIVE}">'
            f"<title>{shown} churned MRR: {escape(format_money(loss, currency))}</title></rect>"
        )
        body.append(_month_text(x + slot * 0.3, height - 4, label))
    return _svg(width, height, body, title)


def bar_chart(items: Sequence[tuple[str, int]], *, title: str, currency: str | None = None) -> SafeString:
    """Horizontal bars (subscriptions per state, top accounts)."""
    row, width = 22, 720
    height = max(len(items), 1) * row + 10
    top_value = _nice_max(max([0, *(v for _, v in items)]))
    shown = [(label[:28], format_money(value, currency) if currency else str(value)) for label, value in items]
    left = _y_axis_left([label for label, _ in shown] or [""]) + 2
    # The value is written after its bar: the longest bar leaves room for the longest value.
    room = int(max([text_width(text) for _, text in shown] or [0])) + 16
    body: list[str] = []
    for i, ((label, text), (full, value)) in enumerate(zip(shown, items, strict=True)):
        y = 5 + i * row
        bar_w = (width - left - room) * value / top_value
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{bar_w:.1f}" height="{row - 8}" fill="{NEUTRAL}">'
            f"<title>{escape(full)}: {escape(text)}</title></rect>"
        )
        body.append(f'<text x="{left + bar_w + 6:.1f}" y="{y + 14}">{escape(text)}</text>')
    return _svg(width, height, body, title)
