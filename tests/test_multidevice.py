"""Data parallelism over 8 forced CPU devices matches a single device.

The child process starts JAX with ``--xla_force_host_platform_device_count=8``
and trains the same tiny model twice: on a 1-device mesh and on an 8-device
mesh (batch 64 split into 8 shards of 8). The loss curve, the test metrics and
the final parameters agree within float32 reduction-order tolerance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

from dwsep_jax import parallel

REPO = Path(__file__).resolve().parents[1]

OVERRIDES = [
    "seed=1",
    "model.width_multiplier=0.25",
    "model.dropout_rate=0.0",
    "train.epochs=2",
    "train.batch_size=64",
    "train.eval_batch_size=60",
    "train.log_every=1",
    "train.warmup_epochs=0.5",
]

CHILD = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from dwsep_jax import config, parallel, train
    from tests.test_checkpoint_resume import tiny_dataset
    from tests.test_multidevice import OVERRIDES

    assert jax.device_count() == 8, jax.devices()
    out = {}
    for n in (1, 8):
        cfg = config.load_config(None, [*OVERRIDES, f"train.num_devices={n}"])
        result = train.train_and_evaluate(
            cfg, "separable", tiny_dataset(), progress=False
        )
        out[n] = {"num_devices": result.num_devices, "history": result.history}

    mesh = parallel.data_mesh()
    batch = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    sharded = parallel.shard_batch(batch, mesh)
    out["shards"] = [
        [s.device.id, s.index[0].start, s.index[0].stop, np.asarray(s.data).tolist()]
        for s in sharded.addressable_shards
    ]
    errors = []
    cfg = config.load_config(
        None, [*OVERRIDES, "train.num_devices=8", "train.batch_size=60"]
    )
    try:
        train.train_and_evaluate(cfg, "separable", tiny_dataset(), progress=False)
    except ValueError as err:
        errors.append(str(err))
    out["errors"] = errors
    print("RESULT " + json.dumps(out))
    """
)


def test_eight_devices_match_one_device():
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "XLA_FLAGS": (
            os.environ.get("XLA_FLAGS", "")
            + " --xla_force_host_platform_device_count=8"
            # Faster compiles for a handful of tiny steps; same for both meshes.
            + " --xla_backend_optimization_level=0"
        ),
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    runs = json.loads(line[len("RESULT ") :])
    one, eight = runs["1"], runs["8"]
    assert (one["num_devices"], eight["num_devices"]) == (1, 8)

    def curve(run, key):
        return [(h["step"], h[key]) for h in run["history"] if key in h]

    steps_one, loss_one = zip(*curve(one, "loss"))
    steps_eight, loss_eight = zip(*curve(eight, "loss"))
    assert steps_one == steps_eight == tuple(range(1, 9))
    np.testing.assert_allclose(loss_eight, loss_one, rtol=2e-4, atol=1e-5)
    # The model learns on this data, so the curve is not flat.
    assert loss_one[-1] < loss_one[0]
    # Each of the 8 devices holds 2 consecutive rows of a 16-row batch.
    batch = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    shards = sorted(runs["shards"])
    assert [s[0] for s in shards] == list(range(8))
    for _, start, stop, rows in shards:
        assert stop - start == 2
        np.testing.assert_array_equal(rows, batch[start:stop])
    assert sorted(s[1] for s in shards) == list(range(0, 16, 2))
    assert len(runs["errors"]) == 1
    assert "'train.batch_size'=60 does not split over 8 devices" in runs["errors"][0]

    for key in ("test_loss", "test_accuracy"):
        np.testing.assert_allclose(
            [v for _, v in curve(eight, key)],
            [v for _, v in curve(one, key)],
            rtol=2e-4,
            atol=1e-5,
        )


def test_mesh_rejects_more_devices_than_present():
    n = jax.device_count()
    assert parallel.data_mesh().shape == {"data": n}
    with pytest.raises(ValueError, match=rf"num_devices={n + 1}; expected"):
        parallel.data_mesh(n + 1)
    with pytest.raises(ValueError, match=r"num_devices=-1"):
        parallel.data_mesh(-1)
