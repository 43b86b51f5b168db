"""Runs the dwsep-jax benchmark: ``python experiments/bench.py [--quick] [--out F]``.

The same as ``dwsep-jax bench``; see :mod:`dwsep_jax.bench` for what is timed.
"""

import sys

from dwsep_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
