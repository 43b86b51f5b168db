"""Separable MobileNet vs its standard-conv twin, from a config file.

The library calls behind ``dwsep-jax compare``, spelled out for a researcher
who wants to change one step::

    python experiments/compare.py --config configs/mnist.yaml --out runs/compare
    python experiments/compare.py --out runs/compare --resume   # after a kill

Writes ``OUT/config.yaml``, ``OUT/results.json``, ``OUT/report.md``, the plots,
and per model ``OUT/<conv_type>/metrics.{jsonl,csv}`` and ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import logging

from dwsep_jax import config, report, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist.yaml")
    parser.add_argument("--out", default="runs/compare")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    cfg = config.load_config(args.config, args.overrides)
    results = train.compare(cfg, workdir=args.out, resume=args.resume)
    print(train.format_comparison(results))
    print(f"\nreport: {report.write_compare_report(args.out, cfg, results)}")


if __name__ == "__main__":
    main()
