"""How the admin shows organisations: status badges, durations and the time-to-active chart's geometry."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html

from ghostcrm.organizations.models import Organization

Status = Organization.Status

BADGE_COLOURS: dict[str, str] = {
    Status.PENDING: "#6c757d",
    Status.PROVISIONING: "#0d6efd",
    Status.ACTIVE: "#198754",
    Status.FAILED: "#dc3545",
    Status.SUSPENDED: "#fd7e14",
    Status.DEPROVISIONING: "#6f42c1",
    Status.DELETED: "#495057",
    Status.PURGED: "#adb5bd",
}


# The success message after a lifecycle action, per verb ("Suspend: ACME" read like an order, not a result).
LIFECYCLE_DONE = {
    "retry": "Provisioning starts again for",
    "suspend": "Suspended",
    "resume": "Resumed",
    "deprovision": "Deprovisioning started for",
}
LIFECYCLE_CONSEQUENCES = {
    "retry": "Provisioning starts again: failed organisations go back to pending, stuck ones are re-enqueued.",
    "suspend": "Their CRM loses its database login at once; no data is touched. Resume restores it.",
    "resume": "Their CRM may log in to its database again.",
    "deprovision": "Their schemas are exported, then marked deleted; the retention purge drops them later. "
    "The exports are kept.",
}
LIFECYCLE_LABELS = {
    "retry": "Retry provisioning…",
    "suspend": "Suspend…",
    "resume": "Resume…",
    "deprovision": "Deprovision…",
}


def status_badge(status: str) -> str:
    label = Status(status).label if status in Status.values else status
    return format_html(
        '<span class="gc-status" data-status="{}" style="background:{};color:#fff;border-radius:8px;'
        'padding:1px 8px;font-size:11px;font-weight:bold">{}</span>',
        status,
        BADGE_COLOURS.get(status, "#6c757d"),
        label,
    )


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def time_to_active_chart(hourly: list[dict[str, Any]], *, width: int = 720, height: int = 200) -> dict[str, Any]:
    """Bars for p95 and p50 time to active per hour over the last day, as inline-SVG geometry.

    The hours are rolling (they end now, e.g. at 20:19), so the axis marks instants, not hours: a tick and a
    time (UTC) on the boundary where a bucket ends, every fourth one counted back from the last (now).
    """
    top = max([bucket["p95"] or 0 for bucket in hourly] + [1.0])
    pad_left, pad_bottom = 48, 20
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - 8
    slot = plot_w / max(len(hourly), 1)
    bars = []
    for index, bucket in enumerate(hourly):
        x = pad_left + index * slot
        for key, inset in (("p95", 0.1), ("p50", 0.3)):
            value = bucket[key]
            if value is None:
                continue
            bar_h = max(plot_h * value / top, 1.0)
            bars.append(
                {
                    "series": key,
                    "x": round(x + slot * inset, 1),
                    "y": round(8 + plot_h - bar_h, 1),
                    "w": round(slot * (1 - 2 * inset), 1),
                    "h": round(bar_h, 1),
                    "title": (
                        f"{bucket['start']:%H:%M}-{bucket['end']:%H:%M} UTC: {key} {format_duration(value)} "
                        f"({bucket['count']} active)"
                    ),
                }
            )
    labels = [
        {
            "x": round(pad_left + (i + 1) * slot, 1),
            "text": f"{bucket['end']:%H:%M}",
            # The last time sits on the right edge of the plot: anchored at its end so it is not cut off.
            "anchor": "end" if i == len(hourly) - 1 else "middle",
        }
        for i, bucket in enumerate(hourly)
        if (len(hourly) - 1 - i) % 4 == 0
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "label_y": height - 4,
        "axis_y": 8 + plot_h,
        "pad_left": pad_left,
        "top_label": format_duration(top),
        "empty": not bars,
    }
