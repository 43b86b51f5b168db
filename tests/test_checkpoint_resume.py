"""Orbax checkpoints: resume after SIGKILL, refusal to overwrite, bad input.

The kill test runs training in a child process that stops inside epoch 2 (its
batch iterator blocks after a checkpoint is on disk), kills it with SIGKILL,
resumes it in a second child, and compares parameters and metrics with an
uninterrupted run of the same seed in a third child: they must be identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from dwsep_jax import cli, config, data, metrics, train
from dwsep_jax.checkpoint import CheckpointError, TrainCheckpoints

REPO = Path(__file__).resolve().parents[1]

# 256 training images / batch 32 = 8 steps per epoch, 2 epochs = 16 steps.
# Checkpoints at 3, 6, 9, 12, 15 and 16; the killed child stops after step 11,
# so metric records of step 10 were written after its last checkpoint (9).
OVERRIDES = [
    "seed=3",
    "model.width_multiplier=0.25",
    "model.dropout_rate=0.2",
    "data.augment.crop_padding=2",
    "data.augment.flip=true",
    "train.epochs=2",
    "train.batch_size=32",
    "train.eval_batch_size=64",
    "train.warmup_epochs=0.5",
    "train.log_every=2",
    "train.checkpoint_every=3",
    "train.num_devices=1",
]
TOTAL_STEPS = 16
KILL_AFTER_STEP = 11
LAST_CHECKPOINT_BEFORE_KILL = 9
TIMING_KEYS = ("images_per_s",)
# Parameters overflow after the first update; a checkpoint every step.
NAN_OVERRIDES = [
    "train.learning_rate=1.0e+30",
    "train.warmup_epochs=0.0",
    "train.checkpoint_every=1",
    "train.keep_checkpoints=3",
]


def tiny_dataset() -> data.Dataset:
    """320 random 16x16 grey images in 4 classes: 256 train, 64 test."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(320, 16, 16, 1), dtype=np.uint8)
    labels = (images[:, :8].mean(axis=(1, 2, 3)) > 127).astype(np.int32) * 2
    labels += (images[:, :, :8].mean(axis=(1, 2, 3)) > 127).astype(np.int32)
    return data.Dataset(
        "tiny",
        data.Split(images[:256], labels[:256]),
        data.Split(images[256:], labels[256:]),
        num_classes=4,
    )


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    from dwsep_jax import config, data, train
    from tests.test_checkpoint_resume import (
        KILL_AFTER_STEP, NAN_OVERRIDES, OVERRIDES, tiny_dataset,
    )

    workdir, mode = Path(sys.argv[1]), sys.argv[2]
    cfg = config.load_config(None, OVERRIDES + (NAN_OVERRIDES if mode == "nan" else []))
    dataset = tiny_dataset()
    steps_per_epoch = len(dataset.train) // cfg.train.batch_size
    if mode == "stall":
        original = data.train_batches

        def stalling(*args, **kwargs):
            start = kwargs["epoch"] * steps_per_epoch + kwargs.get("start_step", 0)
            for i, batch in enumerate(original(*args, **kwargs)):
                if start + i == KILL_AFTER_STEP:
                    (workdir / "stalled").touch()
                    time.sleep(600)
                yield batch

        train.data_lib.train_batches = stalling
    try:
        result = train.train_and_evaluate(
            cfg, "separable", dataset, workdir=workdir / "run",
            resume=mode == "resume", progress=False,
        )
    except train.NonFiniteLossError as err:
        (workdir / "error.txt").write_text(str(err))
    else:
        (workdir / (mode + ".json")).write_text(json.dumps(result.history))
    """
)


def _child(workdir: Path, mode: str) -> subprocess.Popen:
    """``mode``: 'plain' (uninterrupted), 'stall' (blocks to be killed), 'resume'
    or 'nan' (a learning rate that blows up)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(workdir), mode],
        cwd=REPO,
        env=CHILD_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# Children compile without LLVM optimisation (a few seconds less per compile;
# the steps are tiny). All runs compared here use the same flags.
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": str(REPO),
    "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")
    + " --xla_backend_optimization_level=0",
}


def _without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _final_state(run_dir: Path) -> dict:
    path = run_dir / "checkpoints" / str(TOTAL_STEPS) / "state"
    return ocp.StandardCheckpointer().restore(path.absolute())


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(tmp_path):
    ref_dir, kill_dir = tmp_path / "reference", tmp_path / "killed"
    reference = _child(ref_dir, "plain")
    child = _child(kill_dir, "stall")
    checkpoint = kill_dir / "run" / "checkpoints" / str(LAST_CHECKPOINT_BEFORE_KILL)
    deadline = time.monotonic() + 180
    while not ((kill_dir / "stalled").exists() and checkpoint.is_dir()):
        if child.poll() is not None:
            pytest.fail(f"child exited before the kill:\n{child.stdout.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("child did not reach the kill point in 180 s")
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stdout.close()

    # Killed mid-epoch 2: metrics of step 10 exist beyond the last checkpoint.
    run = kill_dir / "run"
    killed_steps = [r["step"] for r in metrics.read_jsonl(run / "metrics.jsonl")]
    assert max(killed_steps) > LAST_CHECKPOINT_BEFORE_KILL
    with TrainCheckpoints(run / "checkpoints", save_every=3, resume=True) as saved:
        assert saved.latest_step() == LAST_CHECKPOINT_BEFORE_KILL

    resumed = _child(kill_dir, "resume")
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, out

    history = json.loads((kill_dir / "resume.json").read_text())
    ref_history = json.loads((ref_dir / "plain.json").read_text())
    assert _without_timing(history) == _without_timing(ref_history)
    assert [h["step"] for h in history if "test_accuracy" in h] == [8, 16]
    assert _without_timing(metrics.read_jsonl(run / "metrics.jsonl")) == (
        _without_timing(metrics.read_jsonl(ref_dir / "run" / "metrics.jsonl"))
    )

    got, want = _final_state(run), _final_state(ref_dir / "run")
    assert int(got["step"]) == TOTAL_STEPS
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_resume_needs_an_existing_directory(tmp_path, capsys):
    cfg = config.load_config(None, OVERRIDES)
    missing = tmp_path / "nowhere"
    with pytest.raises(CheckpointError, match="does not exist") as err:
        train.train_and_evaluate(
            cfg, "separable", tiny_dataset(), workdir=missing, resume=True
        )
    assert str(missing) in str(err.value)
    with pytest.raises(CheckpointError, match="nowhere"):
        train.compare(cfg, tiny_dataset(), workdir=missing, resume=True)
    assert not missing.exists()

    code = cli.main(["compare", "--out", str(missing), "--resume", "--no-progress"])
    assert code == 2
    assert "cannot resume" in capsys.readouterr().err
    assert not missing.exists()


def test_new_run_refuses_a_folder_with_checkpoints(tmp_path):
    cfg = config.load_config(None, OVERRIDES)
    with TrainCheckpoints(tmp_path / "checkpoints", save_every=1) as ck:
        ck.save(3, {"w": np.ones(3, np.float32)}, {"config": config.to_dict(cfg)})
    before = _snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train.train_and_evaluate(cfg, "separable", tiny_dataset(), workdir=tmp_path)
    # Resuming with a changed config is refused too, naming the key.
    other = config.load_config(None, [*OVERRIDES, "train.learning_rate=0.01"])
    with pytest.raises(CheckpointError, match="train.learning_rate: 0.003 -> 0.01"):
        train.train_and_evaluate(
            other, "separable", tiny_dataset(), workdir=tmp_path, resume=True
        )
    assert _snapshot(tmp_path) == before


def test_non_finite_loss_stops_and_keeps_the_last_finite_checkpoint(tmp_path):
    child = _child(tmp_path, "nan")
    out, _ = child.communicate(timeout=240)
    assert child.returncode == 0, out
    message = (tmp_path / "error.txt").read_text()
    assert "non-finite" in message or "loss became" in message
    failed_step = int(message.split("at step ")[1].split(";")[0])
    assert failed_step >= 2
    directory = tmp_path / "run" / "checkpoints"
    with TrainCheckpoints(directory, save_every=1, resume=True) as ck:
        assert ck.latest_step() == failed_step - 1
    state = ocp.StandardCheckpointer().restore(
        directory.absolute() / str(failed_step - 1) / "state"
    )
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state["params"]))


def test_checkpoint_manager_arguments_and_restore_errors(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": np.asarray(4)}
    with pytest.raises(ValueError, match="save_every=0"):
        TrainCheckpoints(tmp_path / "a", save_every=0)
    with pytest.raises(ValueError, match="max_to_keep=0"):
        TrainCheckpoints(tmp_path / "a", save_every=1, max_to_keep=0)
    with pytest.raises(ValueError, match="exclude each other"):
        TrainCheckpoints(tmp_path / "a", save_every=1, resume=True, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        TrainCheckpoints(tmp_path / "file", save_every=1)

    with TrainCheckpoints(tmp_path / "ck", save_every=2, max_to_keep=2) as ck:
        with pytest.raises(CheckpointError, match="no checkpoint"):
            ck.restore(tree)
        for step in range(1, 6):
            ck.save(step, tree, {"step": step})
        ck.wait()
        assert ck.all_steps() == [2, 4]
    with TrainCheckpoints(tmp_path / "ck", save_every=2, resume=True) as ck:
        state, meta = ck.restore(tree)
        np.testing.assert_array_equal(state["w"], tree["w"])
        assert meta == {"step": 4}
        with pytest.raises(CheckpointError, match="does not fit"):
            ck.restore({"w": np.zeros((3, 3), np.float32), "step": np.asarray(0)})
    with TrainCheckpoints(tmp_path / "ck", save_every=2, overwrite=True) as ck:
        assert ck.latest_step() is None
        with pytest.raises(CheckpointError, match="no checkpoint"):
            ck.read_meta()
