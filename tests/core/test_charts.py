"""The shared SVG charts: valid SVG, every label inside the viewBox (none clipped), columns where the values say,
escaped text, and the shapes the dashboards need (a p50/p95 time series, gains and losses, horizontal bars)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ghostcrm.core import charts
from ghostcrm.core.charts import Series

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> tuple[ET.Element, float, float]:
    root = ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input
    _, _, width, height = (float(v) for v in root.attrib["viewBox"].split())
    return root, width, height


def texts_inside(svg: str) -> list[str]:
    """Every visible <text>, asserting it lies inside the viewBox by the module's own width estimate."""
    root, width, height = parse(svg)
    default_size = int(root.attrib["font-size"])
    shown = []
    for node in root.iter(f"{NS}text"):
        text, x = node.text or "", float(node.attrib["x"])
        assert 0 <= float(node.attrib["y"]) <= height, text
        w = charts.text_width(text, int(node.attrib.get("font-size", default_size)))
        anchor = node.attrib.get("text-anchor", "start")
        left = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
        assert left >= 0, f"{text!r} starts at {left:.1f}, left of the viewBox"
        assert left + w <= width, f"{text!r} ends at {left + w:.1f}, right of the viewBox ({width})"
        shown.append(text)
    return shown


def rects(svg: str) -> list[dict[str, str]]:
    root, _, _ = parse(svg)
    return [{**node.attrib, "title": node.findtext(f"{NS}title") or ""} for node in root.iter(f"{NS}rect")]


def test_a_p50_p95_time_series() -> None:
    hours = [f"{h:02d}:00" for h in range(24)]
    p95 = [None if h % 5 == 0 else 10.0 + h for h in range(24)]
    p50 = [None if h % 5 == 0 else 5.0 for h in range(24)]
    svg = charts.column_chart(
        hours,
        [Series("p95", p95, inset=0.1, notes=[f"({h} active)" for h in range(24)]), Series("p50", p50, inset=0.3)],
        title="Time to active",
        value_text=lambda v: f"{v:.1f} s",
        label_every=4,
        label_at="end",
        min_column=1.0,
    )
    shown = texts_inside(svg)
    assert "23:00" in shown
    assert "19:00" in shown
    assert "20:00" not in shown
    bars = rects(svg)
    assert len(bars) == 2 * 19  # no column where a value is None
    tallest = max(bars, key=lambda bar: float(bar["height"]))
    assert tallest["title"] == "23:00: p95 33.0 s (23 active)"
    p50_bar = next(bar for bar in bars if bar["title"].startswith("01:00: p50"))
    p95_bar = next(bar for bar in bars if bar["title"].startswith("01:00: p95"))
    assert float(p50_bar["width"]) < float(p95_bar["width"])  # the inner series is narrower, drawn in front
    assert "33.0 s" in shown
    assert "0" in shown


def test_gains_go_up_and_losses_down_from_a_zero_line() -> None:
    months = ["Jan", "Feb", "Mar"]
    svg = charts.column_chart(
        months, [Series("gain", [300, 0, 100]), Series("loss", [0, -150, -300])], title="Movements"
    )
    shown = texts_inside(svg)
    assert "+300" in shown
    assert "-300" in shown
    bars = {bar["title"]: bar for bar in rects(svg)}
    up, down = bars["Jan: gain 300"], bars["Mar: loss -300"]
    assert float(up["y"]) + float(up["height"]) == pytest.approx(float(down["y"]))  # both meet at zero
    assert float(up["height"]) == pytest.approx(float(down["height"]))
    assert float(bars["Feb: gain 0"]["height"]) == 0


@pytest.mark.parametrize("extent", [1, 10_000, 123_456_789_00])
def test_y_labels_fit_however_long(extent: int) -> None:
    svg = charts.column_chart(
        ["a", "b"], [Series("v", [extent, -extent])], title="t", value_text=lambda v: f"{v:,.2f} KWD"
    )
    assert any(text.endswith(" KWD") for text in texts_inside(svg))


def test_bars_names_and_values_fit_and_text_is_escaped() -> None:
    items = [("A very long organisation name that is cut", 987_654_321_00.0), ("<script>", 123_456_789_00.0)]
    svg = charts.bar_chart(items, title="Top & more", value_text=lambda v: f"{v:,.0f}")
    shown = texts_inside(svg)
    assert "A very long organisation nam" in shown
    assert "<script>" in shown
    assert "<script>" not in svg
    assert "Top &amp; more" in svg
    widths = [float(bar["width"]) for bar in rects(svg)]
    assert widths[0] > widths[1] > 0
    assert texts_inside(charts.bar_chart([], title="Empty")) == []


def test_an_empty_or_zero_chart_still_draws() -> None:
    assert rects(charts.column_chart([], [], title="Nothing")) == []
    svg = charts.column_chart(["a"], [Series("v", [0])], title="Zero")
    assert texts_inside(svg) == ["0", "0", "a"]


def test_every_series_has_a_value_per_label() -> None:
    with pytest.raises(ValueError, match=r"shorter|longer"):
        charts.column_chart(["a", "b"], [Series("v", [1])], title="t")
