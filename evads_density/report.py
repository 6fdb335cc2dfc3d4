"""summary.json, report.md and the comparison chart, from the per-video rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from .metrics import distribution

METRICS = ("vden", "aden", "oden")
# The paper's comparison table (Vden / Aden / Oden), restated in EVADS.md.
PAPER_REFERENCE = {
    "VideoMME-short": (31.65, 1.16, 4.32),
    "MVBench": (20.69, 2.46, 3.45),
    "ActivityNetQA": (29.69, 2.77, 2.98),
    "EgoSchema": (25.76, 0.00, 4.24),
    "AdsQA": (50.13, 0.85, 5.05),
    "VideoAds": (50.72, 1.40, 4.02),
    "E-VAds": (60.44, 5.08, 18.66),
}


def _source_rows(rows: Sequence[dict], source: str) -> list[dict]:
    return [row[source] for row in rows if isinstance(row.get(source), dict)]


def backends_used(rows: Sequence[dict]) -> dict:
    """What produced the rows, per role; a role served by several backends lists each with
    its number of videos (rows from a crashed worker name none)."""
    seen: dict[str, dict[str, int]] = {}
    for row in rows:
        for role, name in (row.get("backends") or {}).items():
            counts = seen.setdefault(role, {})
            counts[str(name)] = counts.get(str(name), 0) + 1
    return {role: next(iter(counts)) if len(counts) == 1 else
            "; ".join(f"{name} ({n} videos)" for name, n in counts.items())
            for role, counts in seen.items()}


def summarize(rows: Sequence[dict], settings: dict, backends: dict) -> dict:
    """Counts and distributions per metric, overall (primary source) and per source.

    Rows with an ``error`` count as failed and are left out of every distribution, the
    per-source ones included (a ``both`` row whose video failed adds no annotation numbers).
    """
    ok = [row for row in rows if not row.get("error")]
    summary = {"videos": len(rows), "failed": len(rows) - len(ok),
               "failures": {row["video_id"]: row["error"] for row in rows if row.get("error")}}
    for key in METRICS:
        summary[key] = distribution([row.get(key) for row in ok])
    summary["sources"] = {}
    for source in ("video", "annotations"):
        measured = _source_rows(ok, source)
        if measured:
            summary["sources"][source] = {
                "videos": len(measured),
                **{key: distribution([m.get(key) for m in measured]) for key in METRICS
                   if source == "video" or key != "vden"}}
    summary["backends"] = backends
    summary["settings"] = settings
    return summary


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_markdown(summary: dict, chart_name: str) -> str:
    settings, backends = summary["settings"], summary["backends"]
    vd = settings["vden"]
    lines = [
        "# Multi-modal information density", "",
        f"- videos: {summary['videos']}, failed: {summary['failed']}",
        f"- Vden settings: {vd['fps']:g} frames/s, window +-{vd['window']}, weights 1/d^"
        f"{vd['decay']:g}, alpha {vd['alpha']:g}; OCR at {settings['ocr_fps']:g} frames/s, "
        f"change threshold {settings['ocr_change_threshold']:g}, count policy "
        f"`{settings['ocr_count']}`; max {settings['max_seconds']:g} s per video",
        "", "## This collection (means; median in brackets)", "",
        "| source | backends | videos | Vden | Aden | Oden |", "|---|---|---:|---:|---:|---:|"]
    for source, stats in summary["sources"].items():
        used = ("time-aligned OCR/ASR events" if source == "annotations" else
                f"visual: {backends.get('visual')}; ASR: {backends.get('asr')}; "
                f"OCR: {backends.get('ocr')}")
        cells = [f"{_fmt(stats[k]['mean'])} ({_fmt(stats[k]['median'])})" if k in stats
                 else "n/a" for k in METRICS]
        lines.append(f"| {source} | {used} | {stats['videos']} | " + " | ".join(cells) + " |")
    lines += ["", "## The paper's reference benchmarks (published numbers, not measured here)",
              "", "| benchmark | Vden | Aden | Oden |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {v:.2f} | {a:.2f} | {o:.2f} |"
              for name, (v, a, o) in PAPER_REFERENCE.items()]
    lines += ["", "The paper measured Vden with DINOv3-Base features and its own (unpublished) "
              "frame rate, window and alpha; numbers from another visual backend, an "
              "English-only ASR model or other settings are not comparable one to one.", "",
              f"![density chart]({chart_name})"]
    if summary["failures"]:
        lines += ["", "## Failed videos", ""]
        lines += [f"- `{vid}`: {error}" for vid, error in summary["failures"].items()]
    return "\n".join(lines) + "\n"


def draw_chart(summary: dict, path: Path) -> Path:
    """Three bar panels (Vden, Aden, Oden): the paper's benchmarks, then this collection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(PAPER_REFERENCE)
    ours = [(f"this collection\n({source})", stats) for source, stats in summary["sources"].items()]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), constrained_layout=True)
    for index, (axis, key, title) in enumerate(zip(
            axes, METRICS, ("Vden (visual change)", "Aden (speech units/s)",
                            "Oden (screen text units/s)"), strict=True)):
        labels = names + [label for label, _ in ours]
        values = [PAPER_REFERENCE[n][index] for n in names] + [
            (stats.get(key) or {}).get("mean") or 0.0 for _, stats in ours]
        colours = ["#9aa5b1"] * (len(names) - 1) + ["#3d6fb6"] + ["#e07b39"] * len(ours)
        bars = axis.bar(range(len(labels)), values, color=colours)
        for bar, value, (_, stats) in zip(bars[len(names):], values[len(names):], ours,
                                          strict=True):
            if key not in stats:
                bar.set_hatch("//")
                axis.annotate("n/a", (bar.get_x() + bar.get_width() / 2, 0), ha="center",
                              va="bottom", fontsize=8)
            else:
                axis.annotate(f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, value),
                              ha="center", va="bottom", fontsize=8)
        axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    used = "; ".join(f"{k}: {v}" for k, v in summary["backends"].items() if k != "units")
    fig.suptitle("Information density. Grey/blue: the paper's published table. Orange: this "
                 f"collection ({used})", fontsize=9, wrap=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(rows: Sequence[dict], settings: dict, backends: dict, out_dir: Path) -> dict:
    """Write summary.json, report.md and density.png; returns the summary."""
    summary = summarize(rows, settings, backends)
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2),
                                          encoding="utf-8")
    draw_chart(summary, out_dir / "density.png")
    (out_dir / "report.md").write_text(render_markdown(summary, "density.png"), encoding="utf-8")
    return summary
