"""The dashboard's SVG charts: month labels readable, every label inside the viewBox (none clipped)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from billing import charts

NS = "{http://www.w3.org/2000/svg}"
MONTHS = ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06",
          "2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12"]  # fmt: skip


def texts(svg: str) -> tuple[list[tuple[str, float, float]], float, float]:
    """Every visible <text> as (text, left edge, right edge) by the charts' own width estimate, and the viewBox."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    _, _, width, height = (float(v) for v in root.attrib["viewBox"].split())
    default_size = int(root.attrib["font-size"])
    found = []
    for node in root.iter(f"{NS}text"):
        text, x = node.text or "", float(node.attrib["x"])
        assert 0 <= float(node.attrib["y"]) <= height, text
        w = charts.text_width(text, int(node.attrib.get("font-size", default_size)))
        anchor = node.attrib.get("text-anchor", "start")
        left = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
        found.append((text, left, left + w))
    return found, width, height


def assert_inside(svg: str) -> list[str]:
    found, width, _ = texts(svg)
    for text, left, right in found:
        assert left >= 0 and right <= width, f"{text!r} spans {left:.1f}..{right:.1f}, outside 0..{width}"
    return [text for text, _, _ in found]


def test_month_labels_are_month_and_year() -> None:
    assert charts.month_label("2025-12") == "Dec 2025"
    assert charts.month_label("Charly") == "Charly"
    shown = assert_inside(charts.column_chart(MONTHS, [1000] * 12, currency="EUR", title="MRR"))
    assert "Dec 2025" in shown and "Jan 2025" in shown
    assert not any(text == "25-12" for text in shown)


@pytest.mark.parametrize("extent", [10_000, 123_456_789_00])
def test_y_axis_labels_fit_however_long(extent: int) -> None:
    """ "+100.00 EUR" used to start left of the SVG; the margin now grows with the longest label."""
    gains, losses = [extent] + [0] * 11, [0] * 11 + [-extent]
    shown = assert_inside(charts.diverging_chart(MONTHS, gains, losses, currency="EUR", title="Movements"))
    assert any(text.startswith("+") and text.endswith(" EUR") for text in shown)
    assert any(text.startswith("-") and text.endswith(" EUR") for text in shown)
    shown = assert_inside(charts.column_chart(MONTHS, [extent] * 12, currency="KWD", title="MRR"))
    assert any(text.endswith(" KWD") for text in shown)


def test_bar_chart_names_and_values_fit() -> None:
    items = [("A very long organisation name that is cut", 987_654_321_00), ("Ab", 1)]
    shown = assert_inside(charts.bar_chart(items, title="Top", currency="EUR"))
    assert "A very long organisation nam" in shown
    assert_inside(charts.bar_chart([], title="Empty"))
