"""The ``dwsep-jax`` command line.

Subcommands:
  compare   train the separable model and its standard-conv twin, print a table
            and write ``OUT/results.json``.
  summary   per-layer output shapes, parameters and multiply-adds of a model.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

DEFAULT_CONFIG = "configs/mnist.yaml"


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="train separable vs standard and compare")
    p.add_argument(
        "--config",
        default=None,
        help=f"YAML config (default: {DEFAULT_CONFIG} if present, else built-in)",
    )
    p.add_argument("--out", default="runs/compare", help="output folder")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=3 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


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


def run_compare(args: argparse.Namespace) -> int:
    from dwsep_jax import config as config_lib
    from dwsep_jax import train

    path = args.config
    if path is None and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    cfg = config_lib.load_config(path, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(config_lib.to_dict(cfg)))

    results = train.compare(cfg, progress=not args.no_progress)
    table = train.format_comparison(results)
    print(table)
    payload = {name: r.to_dict() for name, r in results.items()}
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    (out / "report.md").write_text(table + "\n")
    print(f"\nwrote {out / 'results.json'}")
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
    _add_summary(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    commands = {"compare": run_compare, "summary": run_summary}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, OSError) as err:
        print(f"dwsep-jax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
