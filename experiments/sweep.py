"""Width-multiplier sweep (MobileNet Table 6 at small scale), from a config file.

The library calls behind ``dwsep-jax sweep``::

    python experiments/sweep.py --config configs/sweep_width.yaml --out runs/sweep
    python experiments/sweep.py --out runs/sweep --resume   # after a kill

Each width multiplier gets a comparison folder ``OUT/width_<alpha>/``; the
sweep's ``OUT/report.md`` holds the table and ``OUT/accuracy_vs_macs.png``.
"""

from __future__ import annotations

import argparse
import logging

from dwsep_jax import config, report, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/sweep_width.yaml")
    parser.add_argument("--out", default="runs/sweep")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    cfg = config.load_config(args.config, args.overrides)
    results = train.sweep(cfg, workdir=args.out, resume=args.resume)
    print(report.format_sweep(results))
    print(f"\nreport: {report.write_sweep_report(args.out, cfg, results)}")


if __name__ == "__main__":
    main()
