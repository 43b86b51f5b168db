"""Run reports: the config used, results, a markdown table and PNG plots.

A comparison folder (``dwsep-jax compare --out DIR``) ends up as::

    DIR/config.yaml          the resolved config of the run
    DIR/results.json         one entry per model (RunResult.to_dict())
    DIR/report.md            comparison table and links to the plots
    DIR/curves.png           train loss, train accuracy, test accuracy per model
    DIR/step_time.png        median step time per model (p10-p90 bars)
    DIR/<conv_type>/         metrics.jsonl, metrics.csv, checkpoints/

A sweep folder (``dwsep-jax sweep``) holds one comparison folder per width
multiplier (``width_0.5/`` ...) plus ``sweep.json``, ``report.md``,
``accuracy_vs_macs.png`` and ``step_time.png`` over all points.

Plots are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg
canvas, so writing a report neither needs a display nor changes the pyplot
backend of the caller's session. Each ``plot_*`` function returns its figure.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_collections
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dwsep_jax.train import RunResult, format_comparison, sweep_dirname, write_config

logger = logging.getLogger(__name__)

SweepResults = Mapping[float, Mapping[str, RunResult]]


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    logger.info("wrote %s", path)


def _series(history: list[dict[str, Any]], key: str) -> tuple[list, list]:
    rows = [h for h in history if key in h]
    return [h["step"] for h in rows], [h[key] for h in rows]


def plot_curves(results: Mapping[str, RunResult], path: str | os.PathLike) -> Figure:
    """Train loss, train accuracy and test accuracy against the step, per model."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = (
        ("loss", "train loss"),
        ("accuracy", "train accuracy"),
        ("test_accuracy", "test accuracy"),
    )
    for ax, (key, title) in zip(axes, panels):
        for name, result in results.items():
            steps, values = _series(result.history, key)
            ax.plot(
                steps,
                values,
                marker="o" if key.startswith("test") else None,
                markersize=3,
                label=name,
            )
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend()
    _save(fig, Path(path))
    return fig


def plot_step_time(results: Mapping[str, RunResult], path: str | os.PathLike) -> Figure:
    """Median step time per run as bars, with p10-p90 error bars."""
    names = list(results)
    medians = [results[n].median_step_ms for n in names]
    low = [results[n].median_step_ms - results[n].step_ms_p10 for n in names]
    high = [results[n].step_ms_p90 - results[n].median_step_ms for n in names]
    fig = Figure(figsize=(max(4.0, 1.1 * len(names) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    # One colour per conv type, in the order the curves use.
    kinds = list(dict.fromkeys(results[n].conv_type for n in names))
    colors = [f"C{kinds.index(results[n].conv_type) % 10}" for n in names]
    ax.bar(names, medians, yerr=[low, high], capsize=4, color=colors)
    ax.set_ylabel("median train step (ms)")
    ax.set_title("step time (p10-p90 bars)")
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 3 else 0)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, Path(path))
    return fig


def plot_accuracy_vs_macs(sweep: SweepResults, path: str | os.PathLike) -> Figure:
    """Test accuracy against multiply-adds per image, one line per conv type.

    Each point is labelled with its width multiplier; the x axis is
    logarithmic, as in MobileNet's accuracy-vs-cost figures.
    """
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    conv_types = sorted({c for point in sweep.values() for c in point})
    for conv_type in conv_types:
        points = sorted(
            (point[conv_type].macs, point[conv_type].test_accuracy, alpha)
            for alpha, point in sweep.items()
            if conv_type in point
        )
        macs = [p[0] / 1e6 for p in points]
        accuracy = [p[1] for p in points]
        ax.plot(macs, accuracy, marker="o", label=conv_type)
        for x, y, alpha in zip(macs, accuracy, (p[2] for p in points)):
            ax.annotate(
                f"{alpha:g}",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image (millions)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy vs multiply-adds (labels: width multiplier)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    _save(fig, Path(path))
    return fig


def write_compare_report(
    directory: str | os.PathLike,
    cfg: ml_collections.ConfigDict,
    results: Mapping[str, RunResult],
) -> Path:
    """Writes config, ``results.json``, ``report.md`` and plots; returns the .md."""
    directory = Path(directory)
    write_config(directory, cfg)
    payload = {name: r.to_dict() for name, r in results.items()}
    (directory / "results.json").write_text(json.dumps(payload, indent=2))
    plot_curves(results, directory / "curves.png")
    plot_step_time(results, directory / "step_time.png")
    lines = [
        f"# {cfg.model.name} on {cfg.data.name}: " + " vs ".join(results),
        "",
        f"width multiplier {cfg.model.width_multiplier:g}, {cfg.train.epochs} "
        f"epochs, batch {cfg.train.batch_size}, {cfg.train.optimizer} at "
        f"{cfg.train.learning_rate:g}, seed {cfg.seed}.",
        "",
        format_comparison(dict(results)),
        "",
        "![loss and accuracy curves](curves.png)",
        "",
        "![step time per model](step_time.png)",
        "",
        "Per-step metrics: "
        + ", ".join(f"[{n}]({n}/metrics.csv)" for n in results)
        + ".",
        "",
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path


def format_sweep(sweep: SweepResults) -> str:
    """Markdown table: one row per (width multiplier, conv type)."""
    lines = [
        "| width | conv type | parameters | multiply-adds | test accuracy "
        "| median step | images / s |",
        "|---|---|---|---|---|---|---|",
    ]
    for alpha in sorted(sweep, reverse=True):
        for conv_type, r in sweep[alpha].items():
            lines.append(
                f"| {alpha:g} | {conv_type} | {r.params:,} | {r.macs / 1e6:.2f}M "
                f"| {100 * r.test_accuracy:.2f}% | {r.median_step_ms:.1f} ms "
                f"| {r.images_per_s:,.0f} |"
            )
    return "\n".join(lines)


def write_sweep_report(
    directory: str | os.PathLike,
    cfg: ml_collections.ConfigDict,
    sweep: SweepResults,
) -> Path:
    """Writes one comparison report per point, then the sweep's own report."""
    directory = Path(directory)
    write_config(directory, cfg)
    for alpha, results in sweep.items():
        point = cfg.copy_and_resolve_references()
        point.model.width_multiplier = float(alpha)
        write_compare_report(directory / sweep_dirname(alpha), point, results)
    payload = {
        f"{alpha:g}": {name: r.to_dict() for name, r in results.items()}
        for alpha, results in sweep.items()
    }
    (directory / "sweep.json").write_text(json.dumps(payload, indent=2))
    plot_accuracy_vs_macs(sweep, directory / "accuracy_vs_macs.png")
    flat = {
        f"{name} {alpha:g}": r
        for alpha in sorted(sweep, reverse=True)
        for name, r in sweep[alpha].items()
    }
    plot_step_time(flat, directory / "step_time.png")
    lines = [
        f"# Width-multiplier sweep: {cfg.model.name} on {cfg.data.name}",
        "",
        f"{cfg.train.epochs} epochs, batch {cfg.train.batch_size}, "
        f"{cfg.train.optimizer} at {cfg.train.learning_rate:g}, seed {cfg.seed}.",
        "",
        format_sweep(sweep),
        "",
        "![accuracy vs multiply-adds](accuracy_vs_macs.png)",
        "",
        "![step time per run](step_time.png)",
        "",
        "Per-point reports: "
        + ", ".join(
            f"[{alpha:g}]({sweep_dirname(alpha)}/report.md)"
            for alpha in sorted(sweep, reverse=True)
        )
        + ".",
        "",
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    return path
