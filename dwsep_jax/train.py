"""Optax training loop for the classifiers, and the separable-vs-standard comparison.

``train_and_evaluate(cfg, conv_type)`` builds the model named by the config,
trains it with a jit-compiled step and evaluates it on the held-out split; it
returns a :class:`RunResult` with accuracy, cost and timing. ``compare(cfg)``
does this for every ``cfg.compare.conv_types`` entry.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from tqdm.auto import tqdm

from dwsep_jax import data as data_lib
from dwsep_jax.models import build_model
from dwsep_jax.summary import model_summary

logger = logging.getLogger(__name__)


class TrainState(train_state.TrainState):
    """Flax train state plus batch-norm running statistics."""

    batch_stats: Any = None


@dataclasses.dataclass
class RunResult:
    """Outcome of one training run; ``to_dict`` gives the ``results.json`` entry."""

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
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def load_dataset(cfg: ml_collections.ConfigDict) -> data_lib.Dataset:
    """The dataset named by ``cfg.data``."""
    if cfg.data.name == "mnist_5k":
        return data_lib.load_mnist_5k(
            test_size=cfg.data.test_size, seed=cfg.seed, path=cfg.data.path or None
        )
    raise ValueError(
        f"config key 'data.name'={cfg.data.name!r} is not a known dataset."
    )


def make_optimizer(
    cfg: ml_collections.ConfigDict, steps_per_epoch: int
) -> optax.GradientTransformation:
    """Optimizer and learning-rate schedule (warm-up then cosine decay)."""
    t = cfg.train
    total = max(1, t.epochs * steps_per_epoch)
    warmup = min(int(t.warmup_epochs * steps_per_epoch), total - 1)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=t.learning_rate,
        warmup_steps=warmup,
        decay_steps=total,
        end_value=t.learning_rate * 0.01,
    )
    if t.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return optax.chain(
            optax.add_decayed_weights(t.weight_decay),
            optax.sgd(schedule, momentum=0.9, nesterov=True),
        )
    if t.optimizer == "rmsprop":
        return optax.chain(
            optax.add_decayed_weights(t.weight_decay),
            optax.rmsprop(schedule, decay=0.9, momentum=0.9, eps=1.0),
        )
    raise ValueError(
        f"config key 'train.optimizer'={t.optimizer!r}; expected 'adamw', 'sgd' or "
        "'rmsprop'."
    )


def cross_entropy(
    logits: jax.Array, labels: jax.Array, num_classes: int, smoothing: float
) -> jax.Array:
    """Per-example softmax cross-entropy with optional label smoothing."""
    targets = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
    if smoothing:
        targets = optax.smooth_labels(targets, smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def make_train_step(num_classes: int, smoothing: float) -> Callable:
    """``step(state, images, labels, key) -> (state, metrics)``, ready for ``jit``."""

    def step(state: TrainState, images, labels, key):
        def loss_fn(params):
            logits, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                rngs={"dropout": key},
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
    eval_fn: Callable, state: TrainState, split: data_lib.Split, cfg
) -> tuple[float, float]:
    """Mean loss and accuracy over a whole split (padded final batch masked)."""
    loss_sum, correct = 0.0, 0.0
    for images, labels, mask in data_lib.batches(
        split, cfg.train.eval_batch_size, drop_remainder=False
    ):
        images = data_lib.normalize(images, cfg.data.mean, cfg.data.std)
        batch_loss, batch_correct = eval_fn(state, images, labels, mask)
        loss_sum += float(batch_loss)
        correct += float(batch_correct)
    return loss_sum / len(split), correct / len(split)


def _memory_bytes(compiled: Any) -> int | None:
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend reports memory
        return None
    if stats is None:
        return None
    return int(getattr(stats, "temp_size_in_bytes", 0))


def train_and_evaluate(
    cfg: ml_collections.ConfigDict,
    conv_type: str,
    dataset: data_lib.Dataset | None = None,
    *,
    progress: bool = True,
) -> RunResult:
    """Trains the configured model with ``conv_type`` and evaluates it.

    Args:
      cfg: configuration from :func:`dwsep_jax.config.load_config`.
      conv_type: 'separable' or 'standard'.
      dataset: an already loaded dataset (loaded from ``cfg.data`` if ``None``).
      progress: show a tqdm progress bar.

    Returns:
      A :class:`RunResult`.
    """
    dataset = dataset or load_dataset(cfg)
    model = build_model(
        cfg.model.name,
        num_classes=dataset.num_classes,
        width_multiplier=cfg.model.width_multiplier,
        conv_type=conv_type,
        dropout_rate=cfg.model.dropout_rate,
        impl=cfg.model.impl,
    )
    summary = model_summary(model, dataset.image_shape)
    batch_size = cfg.train.batch_size
    steps_per_epoch = len(dataset.train) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"config key 'train.batch_size'={batch_size} exceeds the "
            f"{len(dataset.train)} training examples."
        )

    key = jax.random.key(cfg.seed)
    init_key, dropout_key = jax.random.split(key)
    sample = jnp.zeros((1, *dataset.image_shape), jnp.float32)
    variables = model.init(init_key, sample, train=False)
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables.get("batch_stats", {}),
        tx=make_optimizer(cfg, steps_per_epoch),
    )

    step_fn = jax.jit(
        make_train_step(dataset.num_classes, cfg.train.label_smoothing),
        donate_argnums=0,
    )
    eval_fn = jax.jit(make_eval_step(dataset.num_classes))
    spec_images = jax.ShapeDtypeStruct((batch_size, *dataset.image_shape), jnp.float32)
    spec_labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
    t0 = time.perf_counter()
    compiled = step_fn.lower(state, spec_images, spec_labels, dropout_key).compile()
    compile_s = time.perf_counter() - t0
    logger.info("%s: train step compiled in %.2fs", conv_type, compile_s)

    step_times: list[float] = []
    history: list[dict[str, float]] = []
    total_steps = cfg.train.epochs * steps_per_epoch
    bar = tqdm(
        total=total_steps, desc=f"{conv_type:>9}", disable=not progress, leave=False
    )
    train_start = time.perf_counter()
    for epoch in range(cfg.train.epochs):
        for images, labels, _ in data_lib.batches(
            dataset.train, batch_size, shuffle_seed=cfg.seed * 100_003 + epoch
        ):
            images = data_lib.normalize(images, cfg.data.mean, cfg.data.std)
            step_key = jax.random.fold_in(dropout_key, int(state.step))
            t = time.perf_counter()
            state, metrics = compiled(state, images, labels, step_key)
            loss = float(metrics["loss"])
            step_times.append(time.perf_counter() - t)
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"{conv_type}: loss became {loss} at step {int(state.step)}; "
                    "lower train.learning_rate or check the data."
                )
            step = int(state.step)
            if step == 1 or step % cfg.train.log_every == 0 or step == total_steps:
                history.append(
                    {
                        "step": step,
                        "epoch": epoch,
                        "loss": loss,
                        "accuracy": float(metrics["accuracy"]),
                    }
                )
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss:.3f}",
                img_s=f"{batch_size / max(step_times[-1], 1e-9):.0f}",
            )
        test_loss, test_acc = evaluate(eval_fn, state, dataset.test, cfg)
        history.append(
            {
                "step": int(state.step),
                "epoch": epoch,
                "test_loss": test_loss,
                "test_accuracy": test_acc,
            }
        )
        logger.info(
            "%s epoch %d: test loss %.4f accuracy %.4f",
            conv_type,
            epoch,
            test_loss,
            test_acc,
        )
    bar.close()
    train_time = time.perf_counter() - train_start

    # The first few steps include page faults on fresh buffers; skip them.
    times_ms = np.asarray(step_times[min(5, len(step_times) - 1) :]) * 1e3
    median_ms = float(np.median(times_ms))
    test_loss, test_acc = evaluate(eval_fn, state, dataset.test, cfg)
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
        train_time_s=train_time,
        temp_memory_bytes=_memory_bytes(compiled),
        history=history,
    )


def compare(
    cfg: ml_collections.ConfigDict, *, progress: bool = True
) -> dict[str, RunResult]:
    """Trains every ``cfg.compare.conv_types`` model on the same data."""
    dataset = load_dataset(cfg)
    return {
        conv_type: train_and_evaluate(cfg, conv_type, dataset, progress=progress)
        for conv_type in cfg.compare.conv_types
    }


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
