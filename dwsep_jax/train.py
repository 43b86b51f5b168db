"""Optax training loop for the classifiers, and the separable-vs-standard comparison.

``train_and_evaluate(cfg, conv_type)`` builds the model named by the config,
trains it with a jit-compiled step and evaluates it on the held-out split; it
returns a :class:`RunResult` with accuracy, cost and timing. ``compare(cfg)``
does this for every ``cfg.compare.conv_types`` entry and ``sweep(cfg)`` for
every ``cfg.sweep.width_multipliers`` entry.

Given a ``workdir``, a run writes its metrics there (``metrics.jsonl`` and
``metrics.csv``, see :mod:`dwsep_jax.metrics`) and orbax checkpoints every
``train.checkpoint_every`` steps and at the end (``workdir/checkpoints``, see
:mod:`dwsep_jax.checkpoint`). ``resume=True`` continues from the newest
checkpoint. The batch order, the dropout keys and the augmentation of a step
are pure functions of ``(seed, epoch, step)``, and the checkpoint holds the
metric history, so a run that is killed and resumed ends with the same
parameters and metrics as one that was never interrupted.

With more than one device (or ``train.num_devices`` > 1) each batch is split
over a ``data`` mesh axis and the state is replicated (:mod:`dwsep_jax.parallel`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import yaml
from flax.training import train_state
from tqdm.auto import tqdm

from dwsep_jax import checkpoint as checkpoint_lib
from dwsep_jax import config as config_lib
from dwsep_jax import data as data_lib
from dwsep_jax import parallel
from dwsep_jax.checkpoint import CheckpointError, TrainCheckpoints
from dwsep_jax.metrics import MetricWriter
from dwsep_jax.models import build_model
from dwsep_jax.summary import model_summary

logger = logging.getLogger(__name__)

# Config keys that may change between a run and its resumption: they decide how
# often and where state is written, or how the same batch is split over devices.
RESUMABLE_KEYS = (
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.num_devices",
)


class TrainState(train_state.TrainState):
    """Flax train state plus batch-norm running statistics."""

    batch_stats: Any = None


@dataclasses.dataclass
class RunResult:
    """Outcome of one training run; ``to_dict`` gives the ``results.json`` entry.

    ``history`` holds the metric records as written to ``metrics.jsonl``: train
    records (``step``, ``epoch``, ``loss``, ``accuracy``, ``learning_rate``,
    ``images_per_s``; loss and accuracy are means since the previous record)
    and one test record per epoch (``step``, ``epoch``, ``test_loss``,
    ``test_accuracy``).
    """

    conv_type: str
    params: int
    macs: int
    bn_params: int
    compile_s: float
    median_step_ms: float
    step_ms_p10: float
    step_ms_p90: float
    images_per_s: float
    test_accuracy: float
    test_loss: float
    train_time_s: float
    temp_memory_bytes: int | None
    width_multiplier: float = 1.0
    num_devices: int = 1
    resumed_from_step: int | None = None
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss, parameter or optimizer state."""


def load_dataset(cfg: ml_collections.ConfigDict) -> data_lib.Dataset:
    """The dataset named by ``cfg.data`` (see :func:`dwsep_jax.data.load_dataset`)."""
    return data_lib.load_dataset(cfg.data, cfg.seed)


def make_schedule(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.Schedule:
    """Linear warm-up from 0 to ``train.learning_rate``, then cosine decay to 1%."""
    t = cfg.train
    total = max(1, t.epochs * steps_per_epoch)
    warmup = min(int(t.warmup_epochs * steps_per_epoch), total - 1)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=t.learning_rate,
        warmup_steps=warmup,
        decay_steps=total,
        end_value=t.learning_rate * 0.01,
    )


def make_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """Optimizer named by ``train.optimizer`` on the :func:`make_schedule` rate.

    ``adamw`` decouples ``train.weight_decay``; ``sgd`` (Nesterov momentum
    ``train.momentum``) and ``rmsprop`` (decay 0.9, momentum ``train.momentum``,
    epsilon 1.0, the MobileNet paper's setting) add it to the gradient as L2
    regularisation.
    """
    t = cfg.train
    schedule = make_schedule(cfg, steps_per_epoch)
    if t.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return optax.chain(
            optax.add_decayed_weights(t.weight_decay),
            optax.sgd(schedule, momentum=t.momentum, nesterov=True),
        )
    if t.optimizer == "rmsprop":
        return optax.chain(
            optax.add_decayed_weights(t.weight_decay),
            optax.rmsprop(schedule, decay=0.9, momentum=t.momentum, eps=1.0),
        )
    raise ValueError(
        f"config key 'train.optimizer'={t.optimizer!r}; expected 'adamw', 'sgd' or "
        "'rmsprop'."
    )


def cross_entropy(
    logits: jax.Array, labels: jax.Array, num_classes: int, smoothing: float
) -> jax.Array:
    """Per-example softmax cross-entropy with optional label smoothing.

    Args:
      logits: ``(N, num_classes)``.
      labels: integer ``(N,)``.

    Returns:
      ``(N,)`` losses.
    """
    targets = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    if smoothing:
        targets = optax.smooth_labels(targets, smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def make_train_step(num_classes: int, smoothing: float) -> Callable:
    """``step(state, images, labels, key) -> (state, metrics)``, ready for ``jit``.

    ``images`` is ``(N, H, W, C)`` float32, ``labels`` ``(N,)`` int32. The dropout
    key of the step is ``fold_in(key, state.step)``, so it depends only on the
    base key and the step number.
    """

    def step(state: TrainState, images, labels, key):
        step_key = jax.random.fold_in(key, state.step)

        def loss_fn(params):
            logits, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                rngs={"dropout": step_key},
                mutable=["batch_stats"],
            )
            loss = cross_entropy(logits, labels, num_classes, smoothing).mean()
            return loss, (logits, updates["batch_stats"])

        (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        state = state.apply_gradients(grads=grads, batch_stats=stats)
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return state, {"loss": loss, "accuracy": accuracy}

    return step


def make_eval_step(num_classes: int) -> Callable:
    """``eval(state, images, labels, mask) -> (loss_sum, correct_sum)``."""

    def evaluate(state: TrainState, images, labels, mask):
        logits = state.apply_fn(
            {"params": state.params, "batch_stats": state.batch_stats},
            images,
            train=False,
        )
        loss = cross_entropy(logits, labels, num_classes, 0.0)
        correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        return jnp.sum(loss * mask), jnp.sum(correct * mask)

    return evaluate


def evaluate(
    eval_fn: Callable,
    state: TrainState,
    dataset: data_lib.Dataset,
    batch_size: int,
    mesh: jax.sharding.Mesh | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy over ``dataset.test`` (padded final batch masked)."""
    loss_sum, correct = 0.0, 0.0
    for images, labels, mask in data_lib.batches(
        dataset.test, batch_size, drop_remainder=False
    ):
        images = dataset.normalize(images)
        if mesh is not None:
            images, labels, mask = (
                parallel.shard_batch(x, mesh) for x in (images, labels, mask)
            )
        batch_loss, batch_correct = eval_fn(state, images, labels, mask)
        loss_sum += float(batch_loss)
        correct += float(batch_correct)
    return loss_sum / len(dataset.test), correct / len(dataset.test)


def _memory_bytes(compiled: Any) -> int | None:
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports memory
        return None
    if stats is None:
        return None
    return int(getattr(stats, "temp_size_in_bytes", 0))


def _state_arrays(state: TrainState) -> dict[str, Any]:
    """The array part of a train state: what a checkpoint holds."""
    return {
        "step": state.step,
        "params": state.params,
        "opt_state": state.opt_state,
        "batch_stats": state.batch_stats,
    }


@jax.jit
def _all_finite(tree: Any) -> jax.Array:
    """Whether every float entry of ``tree`` is finite (a scalar bool)."""
    checks = [
        jnp.all(jnp.isfinite(x))
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_same_config(
    saved: Mapping[str, Any], current: Mapping[str, Any], directory: Path
) -> None:
    old, new = _flatten(saved), _flatten(current)
    changed = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if k not in RESUMABLE_KEYS and old.get(k) != new.get(k)
    ]
    if changed:
        raise CheckpointError(
            f"cannot resume from {directory}: the config differs from the one the "
            "checkpoints were written with (" + "; ".join(changed) + ")."
        )


def _validate(cfg: ml_collections.ConfigDict, num_train: int) -> int:
    t = cfg.train
    for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
        value = t[key]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"config key 'train.{key}'={value!r}; expected >= 1.")
    for key in ("checkpoint_every", "keep_checkpoints"):
        value = t[key]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"config key 'train.{key}'={value!r}; expected >= 1.")
    steps_per_epoch = num_train // t.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"config key 'train.batch_size'={t.batch_size} exceeds the "
            f"{num_train} training examples."
        )
    return steps_per_epoch


def _augment_options(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    augment = cfg.data.augment
    return {"crop_padding": augment.crop_padding, "flip": augment.flip}


def train_and_evaluate(
    cfg: ml_collections.ConfigDict,
    conv_type: str,
    dataset: data_lib.Dataset | None = None,
    *,
    workdir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Trains the configured model with ``conv_type`` and evaluates it.

    Args:
      cfg: configuration from :func:`dwsep_jax.config.load_config`.
      conv_type: 'separable' or 'standard'.
      dataset: an already loaded dataset (loaded from ``cfg.data`` if ``None``).
      workdir: folder for ``metrics.jsonl``/``metrics.csv`` and
        ``checkpoints/``; ``None`` keeps everything in memory.
      resume: continue from the newest checkpoint in ``workdir/checkpoints``
        (which must exist; if it holds no checkpoint yet the run starts at
        step 0).
      overwrite: discard checkpoints already in ``workdir``. Without it (or
        ``resume``) a ``workdir`` holding checkpoints is refused.
      progress: show a tqdm progress bar.

    Returns:
      A :class:`RunResult`.

    Raises:
      NonFiniteLossError: the loss became NaN or infinite, or (checked before
        each checkpoint) the state did; no checkpoint of such a state is
        written.
      CheckpointError: see :class:`dwsep_jax.checkpoint.TrainCheckpoints`, or
        the checkpoint was written with a different config.
    """
    if resume and workdir is None:
        raise ValueError("resume=True needs a workdir holding the checkpoints.")
    if dataset is None:
        dataset = load_dataset(cfg)
    steps_per_epoch = _validate(cfg, len(dataset.train))
    batch_size = cfg.train.batch_size
    total_steps = cfg.train.epochs * steps_per_epoch
    mesh = parallel.data_mesh(cfg.train.num_devices)
    parallel.check_batch_size(batch_size, mesh, "config key 'train.batch_size'")
    # Evaluation masks padded examples, so its batch can round up to the mesh.
    eval_batch_size = -(-cfg.train.eval_batch_size // mesh.size) * mesh.size
    cfg_dict = config_lib.to_dict(cfg)
    augment = _augment_options(cfg)
    checkpoints = None
    if workdir is not None:
        workdir = Path(workdir)
        checkpoints = TrainCheckpoints(
            workdir / "checkpoints",
            save_every=cfg.train.checkpoint_every,
            max_to_keep=cfg.train.keep_checkpoints,
            resume=resume,
            overwrite=overwrite,
        )
        if resume and checkpoints.latest_step() is not None:
            _check_same_config(
                checkpoints.read_meta()["config"], cfg_dict, checkpoints.directory
            )

    model = build_model(
        cfg.model.name,
        num_classes=dataset.num_classes,
        width_multiplier=cfg.model.width_multiplier,
        conv_type=conv_type,
        dropout_rate=cfg.model.dropout_rate,
        impl=cfg.model.impl,
    )
    summary = model_summary(model, dataset.image_shape)

    init_key, dropout_key = jax.random.split(jax.random.key(cfg.seed))
    sample = jnp.zeros((1, *dataset.image_shape), jnp.float32)
    # One compiled program instead of hundreds of eager initializer ops, built
    # without LLVM optimisation: it runs once, and optimising it takes longer
    # than running it.
    init_fn = jax.jit(functools.partial(model.init, train=False))
    variables = init_fn.lower(init_key, sample).compile(
        {"xla_backend_optimization_level": 0}
    )(init_key, sample)
    schedule = make_schedule(cfg, steps_per_epoch)
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        tx=make_optimizer(cfg, steps_per_epoch),
    )
    state = parallel.replicate(state, mesh)
    dropout_key = parallel.replicate(dropout_key, mesh)

    start_step = 0
    meta: dict[str, Any] = {"history": [], "step_times": [], "pending": []}
    if checkpoints is not None:
        if resume and checkpoints.latest_step() is not None:
            arrays, meta = checkpoints.restore(_state_arrays(state))
            state = state.replace(**arrays)
            start_step = int(meta["step"])
            logger.info("%s: resumed from step %d", conv_type, start_step)
        elif resume:
            logger.warning(
                "%s: no checkpoint in %s yet; starting at step 0",
                conv_type,
                checkpoints.directory,
            )
    history: list[dict[str, Any]] = meta["history"]
    step_times: list[float] = meta["step_times"]
    pending: list[list[float]] = meta["pending"]
    train_time = float(meta.get("train_time_s", 0.0))

    repl, split = parallel.replicated(mesh), parallel.batch_sharded(mesh)
    step_fn = jax.jit(
        make_train_step(dataset.num_classes, cfg.train.label_smoothing),
        in_shardings=(repl, split, split, repl),
        out_shardings=(repl, repl),
        donate_argnums=0,
    )
    eval_fn = jax.jit(
        make_eval_step(dataset.num_classes),
        in_shardings=(repl, split, split, split),
        out_shardings=repl,
    )
    spec_images = jax.ShapeDtypeStruct((batch_size, *dataset.image_shape), jnp.float32)
    spec_labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    t0 = time.perf_counter()
    compiled = step_fn.lower(state, spec_images, spec_labels, dropout_key).compile()
    compile_s = time.perf_counter() - t0
    logger.info("%s: train step compiled in %.2fs", conv_type, compile_s)

    writer = None
    if workdir is not None:
        writer = MetricWriter(workdir, resume_step=start_step if resume else None)
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc=f"{conv_type:>9}",
        disable=not progress,
        leave=False,
    )

    def log(step: int, record: dict[str, Any]) -> None:
        history.append({"step": step, **record})
        if writer is not None:
            writer.write_scalars(step, record)

    loop_start = time.perf_counter()
    try:
        step = start_step
        first_epoch, offset = divmod(start_step, steps_per_epoch)
        interval_start = time.perf_counter()
        for epoch in range(first_epoch, cfg.train.epochs):
            epoch_batches = data_lib.train_batches(
                dataset,
                batch_size,
                seed=cfg.seed,
                epoch=epoch,
                start_step=offset if epoch == first_epoch else 0,
                **augment,
            )
            for images, labels in epoch_batches:
                t = time.perf_counter()
                state, metrics = compiled(
                    state,
                    parallel.shard_batch(images, mesh),
                    parallel.shard_batch(labels, mesh),
                    dropout_key,
                )
                loss = float(metrics["loss"])
                step_times.append(time.perf_counter() - t)
                step += 1
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"{conv_type}: loss became {loss} at step {step}; lower "
                        "train.learning_rate or check the data. Checkpoints of "
                        "earlier steps are kept."
                    )
                pending.append([loss, float(metrics["accuracy"])])
                bar.update(1)
                if step == 1 or step % cfg.train.log_every == 0 or step == total_steps:
                    now = time.perf_counter()
                    record = {
                        "epoch": epoch,
                        "loss": sum(p[0] for p in pending) / len(pending),
                        "accuracy": sum(p[1] for p in pending) / len(pending),
                        "learning_rate": float(schedule(step - 1)),
                        "images_per_s": len(pending)
                        * batch_size
                        / max(now - interval_start, 1e-9),
                    }
                    log(step, record)
                    bar.set_postfix(
                        loss=f"{record['loss']:.3f}",
                        acc=f"{record['accuracy']:.3f}",
                        img_s=f"{record['images_per_s']:.0f}",
                    )
                    pending.clear()
                    interval_start = now
                if step % steps_per_epoch == 0:
                    test_loss, test_acc = evaluate(
                        eval_fn, state, dataset, eval_batch_size, mesh
                    )
                    log(
                        step,
                        {
                            "epoch": epoch,
                            "test_loss": test_loss,
                            "test_accuracy": test_acc,
                        },
                    )
                    logger.info(
                        "%s epoch %d: test loss %.4f accuracy %.4f",
                        conv_type,
                        epoch,
                        test_loss,
                        test_acc,
                    )
                final = step == total_steps
                if checkpoints is not None and checkpoints.due(step, final=final):
                    if not bool(_all_finite(_state_arrays(state))):
                        raise NonFiniteLossError(
                            f"{conv_type}: parameters or optimizer state became "
                            f"non-finite at step {step}; lower train.learning_rate "
                            "or check the data. Checkpoints of earlier steps are "
                            "kept."
                        )
                    checkpoints.save(
                        step,
                        _state_arrays(state),
                        {
                            "step": step,
                            "conv_type": conv_type,
                            "config": cfg_dict,
                            "history": history,
                            "step_times": step_times,
                            "pending": pending,
                            "train_time_s": train_time
                            + time.perf_counter()
                            - loop_start,
                        },
                        force=final,
                    )
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if checkpoints is not None:
            checkpoints.close()

    tests = [h for h in history if "test_accuracy" in h]
    test_loss, test_acc = tests[-1]["test_loss"], tests[-1]["test_accuracy"]
    # The first few steps include page faults on fresh buffers; skip them.
    times_ms = np.asarray(step_times[min(5, len(step_times) - 1) :]) * 1e3
    median_ms = float(np.median(times_ms))
    return RunResult(
        conv_type=conv_type,
        params=summary.params,
        macs=summary.macs,
        bn_params=summary.bn_params,
        compile_s=compile_s,
        median_step_ms=median_ms,
        step_ms_p10=float(np.percentile(times_ms, 10)),
        step_ms_p90=float(np.percentile(times_ms, 90)),
        images_per_s=batch_size / (median_ms / 1e3),
        test_accuracy=test_acc,
        test_loss=test_loss,
        train_time_s=train_time + time.perf_counter() - loop_start,
        temp_memory_bytes=_memory_bytes(compiled),
        width_multiplier=cfg.model.width_multiplier,
        num_devices=mesh.size,
        resumed_from_step=start_step if resume else None,
        history=history,
    )


def write_config(directory: str | Path, cfg: ml_collections.ConfigDict) -> Path:
    """Writes ``DIR/config.yaml`` (creating ``DIR``) and returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config_lib.to_dict(cfg), sort_keys=False))
    return path


def compare(
    cfg: ml_collections.ConfigDict,
    dataset: data_lib.Dataset | None = None,
    *,
    workdir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, RunResult]:
    """Trains every ``cfg.compare.conv_types`` model on the same data.

    Each model gets ``workdir/<conv_type>/`` (metrics and checkpoints), and
    ``workdir/config.yaml`` records the config. Without ``resume`` or
    ``overwrite``, nothing starts (and nothing is written) if any model's
    folder already holds checkpoints. With ``resume``, ``workdir`` must exist;
    a model whose folder has no checkpoints yet (the run was killed before it
    started) starts at step 0.
    """
    if resume:
        if workdir is None:
            raise ValueError("resume=True needs the workdir of the run to resume.")
        if not Path(workdir).is_dir():
            raise CheckpointError(
                f"cannot resume: run directory {Path(workdir).absolute()} does not "
                "exist."
            )
    if workdir is not None and not (resume or overwrite):
        for conv_type in cfg.compare.conv_types:
            checkpoint_lib.check_free(Path(workdir) / conv_type / "checkpoints")
    if dataset is None:
        dataset = load_dataset(cfg)
    # Written only once the data loaded; a resumed run keeps the original file
    # (its config is checked against the checkpoints instead).
    if workdir is not None and not resume:
        write_config(workdir, cfg)
    results = {}
    for conv_type in cfg.compare.conv_types:
        run_dir = None if workdir is None else Path(workdir) / conv_type
        results[conv_type] = train_and_evaluate(
            cfg,
            conv_type,
            dataset,
            workdir=run_dir,
            resume=resume and (run_dir / "checkpoints").is_dir(),
            overwrite=overwrite,
            progress=progress,
        )
    return results


def sweep_dirname(width_multiplier: float) -> str:
    """Folder name of one sweep point, e.g. ``width_0.75``."""
    return f"width_{width_multiplier:g}"


def sweep(
    cfg: ml_collections.ConfigDict,
    dataset: data_lib.Dataset | None = None,
    *,
    workdir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[float, dict[str, RunResult]]:
    """:func:`compare` at every ``cfg.sweep.width_multipliers`` value.

    Returns ``{width_multiplier: {conv_type: RunResult}}``; each point runs in
    ``workdir/width_<alpha>/``.
    """
    widths: Sequence[float] = cfg.sweep.width_multipliers
    if not widths:
        raise ValueError("config key 'sweep.width_multipliers' is empty.")
    if resume and (workdir is None or not Path(workdir).is_dir()):
        raise CheckpointError(
            f"cannot resume: sweep directory {workdir} does not exist."
        )
    if workdir is not None and not (resume or overwrite):
        for alpha in widths:
            for conv_type in cfg.compare.conv_types:
                checkpoint_lib.check_free(
                    Path(workdir) / sweep_dirname(alpha) / conv_type / "checkpoints"
                )
    if dataset is None:
        dataset = load_dataset(cfg)
    if workdir is not None and not resume:
        write_config(workdir, cfg)
    results = {}
    for alpha in widths:
        point = cfg.copy_and_resolve_references()
        point.model.width_multiplier = float(alpha)
        point_dir = None if workdir is None else Path(workdir) / sweep_dirname(alpha)
        results[float(alpha)] = compare(
            point,
            dataset,
            workdir=point_dir,
            resume=resume and point_dir.is_dir(),
            overwrite=overwrite,
            progress=progress,
        )
    return results


def format_comparison(results: dict[str, RunResult]) -> str:
    """Markdown table of the comparison, one column per model, ratios last."""
    names = list(results)
    rows = [
        ("parameters", lambda r: f"{r.params:,}"),
        ("multiply-adds / image", lambda r: f"{r.macs / 1e6:.2f}M"),
        ("compile time", lambda r: f"{r.compile_s:.2f} s"),
        ("median step time", lambda r: f"{r.median_step_ms:.1f} ms"),
        ("step time p10-p90", lambda r: f"{r.step_ms_p10:.1f}-{r.step_ms_p90:.1f} ms"),
        ("images / s", lambda r: f"{r.images_per_s:,.0f}"),
        (
            "temp memory",
            lambda r: (
                "n/a"
                if r.temp_memory_bytes is None
                else f"{r.temp_memory_bytes / 2**20:.1f} MiB"
            ),
        ),
        ("test accuracy", lambda r: f"{100 * r.test_accuracy:.2f}%"),
    ]
    header = "| | " + " | ".join(names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]
    for label, fmt in rows:
        lines.append(
            f"| {label} | " + " | ".join(fmt(results[n]) for n in names) + " |"
        )
    if {"separable", "standard"} <= set(names):
        s, b = results["separable"], results["standard"]
        lines.append("")
        lines.append(
            f"standard / separable: {b.params / s.params:.1f}x parameters, "
            f"{b.macs / s.macs:.1f}x multiply-adds, "
            f"{b.median_step_ms / s.median_step_ms:.2f}x step time"
        )
    return "\n".join(lines)
