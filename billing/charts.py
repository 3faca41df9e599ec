"""Small inline SVG charts for the revenue dashboard: no JavaScript, no CDN, printable, readable offline."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from billing.money import format_money

POSITIVE, NEGATIVE, NEUTRAL = "#2e7d32", "#c62828", "#1565c0"


def _nice_max(value: int) -> int:
    return max(value, 1)


def _svg(width: int, height: int, body: list[str], title: str) -> SafeString:
    return mark_safe(  # noqa: S308 - every label below goes through escape()
        f'<svg class="gc-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def column_chart(labels: Sequence[str], values: Sequence[int], *, currency: str, title: str) -> SafeString:
    """One column per label (e.g. MRR at each month's end)."""
    width, height, left, bottom, top = 720, 240, 70, 40, 16
    plot_h = height - bottom - top
    top_value = _nice_max(max([0, *values]))
    slot = (width - left - 10) / max(len(values), 1)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{escape(format_money(top_value, currency))}</text>',
        f'<text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar_h = plot_h * max(value, 0) / top_value
        x = left + i * slot + slot * 0.15
        y = height - bottom - bar_h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" fill="{NEUTRAL}">'
            f"<title>{escape(label)}: {escape(format_money(value, currency))}</title></rect>"
        )
        label_x, label_y = x + slot * 0.35, height - bottom + 14
        body.append(f'<text x="{label_x:.1f}" y="{label_y}" text-anchor="middle">{escape(label[2:])}</text>')
    return _svg(width, height, body, title)


def diverging_chart(
    labels: Sequence[str], gains: Sequence[int], losses: Sequence[int], *, currency: str, title: str
) -> SafeString:
    """Per label, a green column up (new + expansion + reactivation) and a red column down (churn + contraction)."""
    width, height, left, pad = 720, 260, 70, 24
    extent = _nice_max(max([0, *gains, *(-v for v in losses)]))
    zero = height / 2
    half = zero - pad
    slot = (width - left - 10) / max(len(labels), 1)
    body = [
        f'<line x1="{left}" y1="{zero}" x2="{width - 10}" y2="{zero}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{pad + 4}" text-anchor="end">+{escape(format_money(extent, currency))}</text>',
        f'<text x="{left - 6}" y="{height - pad}" text-anchor="end">-{escape(format_money(extent, currency))}</text>',
    ]
    for i, (label, gain, loss) in enumerate(zip(labels, gains, losses, strict=True)):
        x = left + i * slot + slot * 0.2
        up, down = half * gain / extent, half * (-loss) / extent
        body.append(
            f'<rect x="{x:.1f}" y="{zero - up:.1f}" width="{slot * 0.6:.1f}" height="{up:.1f}" fill="{POSITIVE}">'
            f"<title>{escape(label)} new MRR: {escape(format_money(gain, currency))}</title></rect>"
        )
        body.append(
            f'<rect x="{x:.1f}" y="{zero:.1f}" width="{slot * 0.6:.1f}" height="{down:.1f}" fill="{NEGATIVE}">'
            f"<title>{escape(label)} churned MRR: {escape(format_money(loss, currency))}</title></rect>"
        )
        body.append(f'<text x="{x + slot * 0.3:.1f}" y="{height - 6}" text-anchor="middle">{escape(label[2:])}</text>')
    return _svg(width, height, body, title)


def bar_chart(items: Sequence[tuple[str, int]], *, title: str, currency: str | None = None) -> SafeString:
    """Horizontal bars (subscriptions per state, top accounts)."""
    row, left, width = 22, 170, 720
    height = max(len(items), 1) * row + 10
    top_value = _nice_max(max([0, *(v for _, v in items)]))
    body: list[str] = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        bar_w = (width - left - 120) * value / top_value
        shown = format_money(value, currency) if currency else str(value)
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label[:28])}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{bar_w:.1f}" height="{row - 8}" fill="{NEUTRAL}">'
            f"<title>{escape(label)}: {escape(shown)}</title></rect>"
        )
        body.append(f'<text x="{left + bar_w + 6:.1f}" y="{y + 14}">{escape(shown)}</text>')
    return _svg(width, height, body, title)
