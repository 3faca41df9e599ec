"""The bench's outputs: JSON, the Markdown report (also copied into docs/performance.md) and PNG charts."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _fmt(stat: dict[str, Any] | None) -> str:
    if not stat:
        return ""
    med = stat["median"]
    value = f"{med * 1000:.0f} ms" if med < 1 else f"{med:.2f} s"
    return f"{value} (±{stat['spread'] * 50:.0f}%, n={len(stat['samples'])})"


def markdown(results: dict[str, Any]) -> str:
    la, lb = results["load_average_start"], results["load_average_end"]
    m = results["machine"]
    lines = [
        f"Measured {results['started']} on {m['node']} ({m['cores']} cores, Python {m['python']}), "
        f"load average {la[0]:.1f} at the start and {lb[0]:.1f} at the end, by `{results['command'].strip()}`. "
        "Median of the alternating runs, ± half the relative spread (max - min) / median.",
        "",
        "| workload | what | ours | reference | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for name, w in results["workloads"].items():
        if "error" in w:
            lines.append(f"| {name} | FAILED: {' '.join(w['error'].split())[-300:]} | | | | |")
            continue
        for row in w["rows"]:
            ref = f"{row['ref_name']}: {_fmt(row['ref'])}" if row.get("ref") else row.get("ref_name", "")
            ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else ""
            lines.append(f"| {name} | {row['what']} | {_fmt(row['ours'])} | {ref} | {ratio} | {row['target']} |")
        if w.get("steps_median_s"):
            steps = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in w["steps_median_s"].items())
            notes.append(f"- {name}: per-step medians from the operation rows: {steps}.")
    return "\n".join([*lines, "", *notes, ""])


def chart(results: dict[str, Any], path: Path) -> None:
    rows = [
        (f"{n}: {r['what'][:40]}", r)
        for n, w in results["workloads"].items()
        for r in w.get("rows", [])
        if r.get("ref") and r.get("ours")
    ]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 1.5))
    labels = [label for label, _ in rows]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r["ours"]["median"] for _, r in rows], height=0.4, label="ours")
    ax.barh([i - 0.2 for i in y], [r["ref"]["median"] for _, r in rows], height=0.4, label="reference")
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.set_xlabel("seconds (median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(results: dict[str, Any], out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d-%H%M", time.gmtime())
    paths = {"json": out / f"{stamp}.json", "md": out / f"{stamp}.md", "png": out / f"{stamp}.png"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    md = markdown(results)
    paths["md"].write_text(f"# Bench {stamp}\n\n![chart]({paths['png'].name})\n\n{md}")
    chart(results, paths["png"])
    if DOC.exists() and BEGIN in DOC.read_text():
        text = DOC.read_text()
        block = f"{BEGIN}\n{md}\n{END}"
        DOC.write_text(re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
        shutil.copy(paths["png"], DOC.parent / "performance.png")
    return paths
