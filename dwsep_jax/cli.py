"""The ``dwsep-jax`` command line.

Subcommands:
  compare   train the separable model and its standard-conv twin, print a table
            and write ``OUT/results.json``, ``OUT/report.md`` and plots;
            ``--resume`` continues a killed run from its checkpoints.
  sweep     the same comparison at every width multiplier of the config, with
            an accuracy-vs-multiply-adds plot.
  summary   per-layer output shapes, parameters and multiply-adds of a model.
  bench     time depthwise, pointwise, separable and standard convs (and
            PyTorch), print a markdown table and write JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ml_collections

DEFAULT_CONFIG = "configs/mnist.yaml"
DEFAULT_SWEEP_CONFIG = "configs/sweep_width.yaml"


def _add_run_flags(
    p: argparse.ArgumentParser, config_help: str, out: str, set_example: str
) -> None:
    """Flags shared by the training commands: config, output, overrides, resume."""
    p.add_argument("--config", default=None, help=config_help)
    p.add_argument("--out", default=out, help="output folder")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {set_example} (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    _add_checkpoint_flags(p)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train separable vs standard and compare")
    _add_run_flags(
        p,
        f"YAML config (default: {DEFAULT_CONFIG} if present, else built-in)",
        "runs/compare",
        "train.epochs=3",
    )


def _add_checkpoint_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest checkpoints in --out",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="discard checkpoints already in --out instead of refusing to start",
    )


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="compare separable vs standard at every width multiplier"
    )
    _add_run_flags(
        p,
        f"YAML config with a sweep section (default: {DEFAULT_SWEEP_CONFIG})",
        "runs/sweep",
        "sweep.width_multipliers=[1,0.5]",
    )


def _add_summary(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer shapes, parameters and MACs")
    p.add_argument(
        "--model", default="mobilenet_v1", help="registered model name (MODELS)"
    )
    p.add_argument(
        "--width-multiplier", type=float, default=1.0, help="alpha (default 1.0)"
    )
    p.add_argument("--resolution", type=int, default=224, help="input height and width")
    p.add_argument(
        "--resolution-multiplier",
        type=float,
        default=None,
        help="rho: input side round(224 * rho); overrides --resolution",
    )
    p.add_argument("--channels", type=int, default=3, help="input channels")
    p.add_argument("--classes", type=int, default=1000, help="classifier outputs")
    p.add_argument("--conv-type", default="separable", help="'separable' or 'standard'")
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON (totals under params, macs, bn_params) instead",
    )


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="time the conv implementations and PyTorch")
    p.add_argument("--quick", action="store_true", help="a subset, under a minute")
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--markdown", default=None, help="write the markdown table here")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument(
        "--no-train-step", action="store_true", help="skip the training step"
    )


def run_bench(args: argparse.Namespace) -> int:
    import dataclasses

    from dwsep_jax import bench

    cfg = bench.QUICK if args.quick else bench.BenchConfig()
    changes = {"torch": not args.no_torch, "train_step": not args.no_train_step}
    if args.repeats is not None:
        if args.repeats < 1:
            raise ValueError(f"--repeats={args.repeats}; expected at least 1.")
        changes["repeats"] = args.repeats
    cfg = dataclasses.replace(cfg, **changes)
    report = bench.run_benchmark(
        cfg, progress=lambda line: print(line, file=sys.stderr, flush=True)
    )
    table = bench.format_report(report)
    print(table)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table + "\n")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.out}")
    return 0


def _run_config(
    args: argparse.Namespace, out: Path, default: str | None, what: str
) -> ml_collections.ConfigDict:
    """The config of a training command.

    ``--config`` if given; with ``--resume`` and no ``--config``, the run
    folder's saved ``config.yaml``; else ``default`` (``None``: built-in
    defaults). ``--set`` overrides apply on top.
    """
    from dwsep_jax import config as config_lib

    if args.resume and not out.is_dir():
        raise FileNotFoundError(
            f"cannot resume: {what} directory {out} does not exist."
        )
    path = args.config
    saved = out / "config.yaml"
    if path is None and args.resume and saved.is_file():
        path = saved
    return config_lib.load_config(path or default, args.overrides)


def run_compare(args: argparse.Namespace) -> int:
    from dwsep_jax import report, train

    out = Path(args.out)
    default = DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None
    cfg = _run_config(args, out, default, "run")

    results = train.compare(
        cfg,
        workdir=out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(train.format_comparison(results))
    report.write_compare_report(out, cfg, results)
    print(f"\nwrote {out / 'results.json'} and {out / 'report.md'}")
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from dwsep_jax import report, train

    out = Path(args.out)
    cfg = _run_config(args, out, DEFAULT_SWEEP_CONFIG, "sweep")

    results = train.sweep(
        cfg,
        workdir=out,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(report.format_sweep(results))
    report.write_sweep_report(out, cfg, results)
    print(f"\nwrote {out / 'report.md'} and {out / 'accuracy_vs_macs.png'}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from dwsep_jax.models import build_model, resolution_from_multiplier
    from dwsep_jax.summary import format_summary, model_summary

    resolution = args.resolution
    if args.resolution_multiplier is not None:
        resolution = resolution_from_multiplier(args.resolution_multiplier)
    if resolution < 1 or args.channels < 1:
        raise ValueError(
            f"--resolution {resolution} and --channels {args.channels}; both must be "
            "positive."
        )
    model = build_model(
        args.model,
        num_classes=args.classes,
        width_multiplier=args.width_multiplier,
        conv_type=args.conv_type,
    )
    summary = model_summary(model, (resolution, resolution, args.channels))
    if args.json:
        print(json.dumps({"model": args.model, **summary.to_dict()}, indent=2))
    else:
        print(format_summary(summary))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dwsep-jax", description="Depthwise separable convolution in JAX."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_compare(sub)
    _add_sweep(sub)
    _add_summary(sub)
    _add_bench(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    commands = {"compare": run_compare, "sweep": run_sweep, "summary": run_summary}
    commands["bench"] = run_bench
    try:
        return commands[args.command](args)
    except BrokenPipeError:
        # The reader of stdout went away (`... | head`): stop quietly, and keep
        # the interpreter's final flush from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        print(f"dwsep-jax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
