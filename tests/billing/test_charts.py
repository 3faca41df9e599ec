"""The revenue dashboard's charts (drawn by ``ghostcrm.core.charts``): months as "Dec 2025", amounts in the
summary's currency, gains up and losses down."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from billing import charts
from billing.selectors import MonthRow, RevenueSummary

NS = "{http://www.w3.org/2000/svg}"


def summary() -> RevenueSummary:
    months = [MonthRow(f"2025-{m:02d}", 1000 * m, 0, 0, -500 if m == 12 else 0, 0, 1000 * m) for m in range(1, 13)]
    return RevenueSummary(
        currency="EUR", currencies=["EUR"], at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), mrr=12_000, arr=144_000,
        months=months, by_status={"active": 3, "past_due": 1}, past_due_amount=0, past_due_count=0,
        top_accounts=[("Globex", 9_000)], active_subscriptions=3,
    )  # fmt: skip


def test_month_labels_are_month_and_year() -> None:
    assert charts.month_label("2025-12") == "Dec 2025"
    assert charts.month_label("Charly") == "Charly"


def test_the_dashboard_charts_speak_months_and_money() -> None:
    drawn = charts.revenue_charts(summary())
    assert set(drawn) == {"mrr_chart", "movement_chart", "status_chart", "top_chart"}
    mrr = ET.fromstring(drawn["mrr_chart"])  # noqa: S314 - our own output
    shown = [node.text for node in mrr.iter(f"{NS}text")]
    assert "Jan 2025" in shown
    assert "Dec 2025" in shown
    assert "120.00 EUR" in shown
    movements = ET.fromstring(drawn["movement_chart"])  # noqa: S314
    titles = [node.findtext(f"{NS}title") for node in movements.iter(f"{NS}rect")]
    assert "Dec 2025: churned MRR -5.00 EUR" in titles
    assert "Mar 2025: new MRR 30.00 EUR" in titles
    assert "9" in " ".join(node.text or "" for node in ET.fromstring(drawn["top_chart"]).iter(f"{NS}text"))  # noqa: S314
