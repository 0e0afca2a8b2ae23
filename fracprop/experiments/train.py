r"""Training loops: any optax optimiser with any gradient estimator, checkpoints and resume.

One optimiser step on a mini-batch ``B`` of examples is

.. math::  \hat g = \mathrm{mask} \odot \mathrm{estimator}(\text{problem}, θ, u_B, T_B),
           \quad θ \leftarrow Π_{[g_{min}, g_{max}]}\big(θ + \mathrm{optax}(\hat g)\big),

where the estimator averages over the batch (examples under ``vmap``), ``mask`` selects the
trained entries (a fraction ``train_fraction`` of them, drawn once from the seed), and ``Π``
projects every conductance leaf (a leaf named ``g``) onto ``[g_min, g_max]`` and every order
leaf (``alpha``) onto ``[alpha_min, 1]``: physical conductances stay positive and bounded.

Batches are drawn without replacement within an epoch from ``fold_in(PRNGKey(seed), epoch)``,
so the data order depends only on the seed and the step: a run resumed from a checkpoint
continues exactly as the uninterrupted run would have (bit-identical parameters).

A checkpoint is one file: a JSON header line (format, step, the resolved config, its hash),
then ``eqx.tree_serialise_leaves`` of ``(params, opt_state)``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._learning.base import AbstractEstimator, AbstractProblem
from .._learning.sharding import _sharded_loss_and_estimate, sharded_step
from .checkpoints import CHECKPOINT, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainingDiverged, TrainingError, mesh_for, optional_module
from .plots import _plots
from .tasks import TaskData, TaskError
from .train_config import (
    Constraints,
    TrainConfig,
    config_to_dict,
    load_train_config,
    train_config_from_dict,
)


def project(params, constraints: Constraints):
    """Clip conductance leaves (named ``g``) and order leaves (``alpha``) to their bounds."""

    def clip(path, x):
        name = getattr(path[-1], "name", getattr(path[-1], "key", None)) if path else None
        if name == "g":
            return jnp.clip(x, constraints.g_min, constraints.g_max)
        if name == "alpha":
            return jnp.clip(x, constraints.alpha_min, 1.0)
        return x

    return jax.tree_util.tree_map_with_path(clip, params)


def partial_mask(params, fraction: float, seed: int, base=None):
    """1 on a random ``fraction`` of the trainable entries of every leaf (at least one), else 0.

    ``base`` (a 0/1 pytree like ``params``, e.g. ``problem.mask()``) marks the entries that
    are trainable at all; default every entry. The draw depends only on ``seed``.
    """
    rng = np.random.default_rng(seed + 7919)
    if base is None:
        base = jax.tree.map(jnp.ones_like, params)

    def pick(x, b):
        x, b = np.asarray(x), np.asarray(b)
        if fraction >= 1:
            return jnp.asarray(b, dtype=x.dtype)
        allowed = np.flatnonzero(b.ravel() > 0)
        if allowed.size == 0:
            return jnp.zeros_like(x)
        keep = max(1, int(round(fraction * allowed.size)))
        m = np.zeros(x.size)
        m[rng.permutation(allowed)[:keep]] = 1.0
        return jnp.asarray(m.reshape(x.shape), dtype=x.dtype)

    return jax.tree.map(pick, params, base)


def make_step(problem, estimator, optimizer, mask, constraints: Constraints, mesh=None):
    """The jitted optimiser step ``(params, opt_state, inputs, targets) -> (params, opt_state,
    loss, finite)``; ``loss`` is the batch loss *before* the update.

    It is traced once: every call must have the same shapes and dtypes (a second trace raises,
    via ``eqx.debug.assert_max_traces``), so a training loop never recompiles between steps.
    With a ``mesh`` (`fracprop.batch_mesh`), the batch is split over its devices and the
    parameters and optimiser state are replicated (`fracprop.sharded_step`); each device
    computes the loss and the estimate of its own rows (`jax.shard_map`), and the
    per-example values are gathered and averaged as on one device.
    """
    optax = optional_module("optax", "training")

    def loss_and_grads(params, inputs, targets):
        if mesh is None:
            loss = problem.loss(params, inputs, targets)
            return loss, estimator(problem, params, inputs, targets)
        # Each device loops over its own rows (no collective inside Newton/homotopy loops).
        return _sharded_loss_and_estimate(estimator, problem, params, inputs, targets, mesh)

    @eqx.debug.assert_max_traces(max_traces=1)
    def step(params, opt_state, inputs, targets):
        loss, grads = loss_and_grads(params, inputs, targets)
        grads = jax.tree.map(lambda g, m: g * m, grads, mask)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )
        # optax mixes Python floats with its int32 step count; it is traced with JAX's
        # standard promotion whatever the caller's setting.
        with jax.numpy_dtype_promotion("standard"):
            updates, new_state = optimizer.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
        new_params = project(new_params, constraints)
        return new_params, new_state, loss, finite

    if mesh is None:
        return eqx.filter_jit(step)
    return sharded_step(step, batch_argnums=(2, 3), mesh=mesh)


def batch_indices(seed: int, step: int, n_examples: int, batch_size: int) -> np.ndarray:
    """Example indices of the mini-batch for optimiser step ``step`` (1-based).

    Epoch ``e`` is a permutation drawn from ``fold_in(PRNGKey(seed), e)``; a batch never spans
    two epochs (the remainder of each permutation is dropped), so every batch has the same shape.
    """
    per_epoch = n_examples // batch_size
    epoch, k = divmod(step - 1, per_epoch)
    perm = np.asarray(
        jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n_examples)
    )
    return perm[k * batch_size : (k + 1) * batch_size]


class _Progress:
    """A one-line live bar on stderr: step, batch loss and throughput."""

    def __init__(self, total: int, batch: int, enabled: bool, every: float = 0.25):
        self.total, self.batch, self.enabled, self.every = total, batch, enabled, every
        self.t0 = self.last = time.perf_counter()
        self.start_step = None

    def update(self, step: int, loss: float, force: bool = False):
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.start_step is None:
            self.start_step, self.t0 = step - 1, now
        if not force and now - self.last < self.every and step < self.total:
            return
        self.last = now
        done = int(30 * step / self.total)
        elapsed = now - self.t0
        rate = (step - self.start_step) / elapsed if elapsed > 1e-2 else None
        speed = f"  {rate:.1f} steps/s  {rate * self.batch:.1f} examples/s" if rate else ""
        sys.stderr.write(
            f"\r[{'#' * done}{'.' * (30 - done)}] step {step}/{self.total}  loss {loss:.4g}{speed}"
        )
        if step >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


@dataclasses.dataclass
class TrainResult:
    """The outcome of `train`: final parameters, the metric history and the summary."""

    params: Any
    history: list[dict]
    summary: dict
    task: TaskData
    out: Path | None


def _check_compatible(estimator, problem) -> None:
    """Fail before tracing when the estimator cannot estimate the trainable set (a task may
    also bring its own problem and estimator callables, which are not checked)."""
    if isinstance(problem, AbstractProblem) and isinstance(estimator, AbstractEstimator):
        problem.check_estimator(estimator)


def _one_device(tree):
    """Replicated arrays (the outputs of a sharded step) as this process's single-device copy.

    Evaluation on the full train and test sets then runs once, not once per device on the
    same data. Running it on every fake CPU device at once could also deadlock: jaxlib 0.10's
    batched LAPACK kernels wait on the CPU thread pool that all devices share.
    """
    return jax.tree.map(
        lambda x: x.addressable_data(0) if isinstance(x, jax.Array) and len(x.devices()) > 1 else x,
        tree,
    )


def _evaluate(data: TaskData, params, loss_fn, predict_fn) -> dict:
    out = {
        "train_loss": float(loss_fn(params, *data.train)),
        "test_loss": float(loss_fn(params, *data.test)),
    }
    if data.labels is not None and predict_fn is not None:
        for split, (inputs, _), labels in (
            ("train", data.train, data.labels[0]),
            ("test", data.test, data.labels[1]),
        ):
            pred = np.asarray(predict_fn(params, inputs))
            out[f"{split}_accuracy"] = float(np.mean(pred == np.asarray(labels)))
    return out


def _prepare_out(out: Path | None, resume: Path | None, overwrite: bool) -> Path | None:
    if resume is not None:
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise TrainingError("--resume continues in its own folder; do not also pass --out")
        return Path(resume)
    if out is None:
        return None
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise TrainingError(
            f"output folder {str(out)!r} exists and is not empty; choose another --out, "
            "resume it with --resume, or pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def train(
    config: TrainConfig | str | Path,
    *,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    optimizer=None,
    progress: bool = False,
    log=None,
) -> TrainResult:
    """Train a task's network with an estimator and an optax optimiser.

    **Arguments**

    - ``config``: a `TrainConfig`, the path of a YAML file, or the same data as a dict.
    - ``out``: output folder (config, ``metrics.jsonl``, ``checkpoint.eqx``, ``params.eqx``,
      plots, ``summary.json``); must be new or empty unless ``overwrite``. ``None``: keep
      nothing on disk.
    - ``resume``: a previous run's folder; continues from its checkpoint (the config must be
      the one it was made with, except for ``steps``/``eval_every``/``checkpoint_every``).
    - ``optimizer``: an optax ``GradientTransformation`` that replaces ``config.optimizer``.
    - ``progress``: show a live bar on stderr; ``log``: a callable for one-line messages.

    Raises `TrainingDiverged` (after saving the last good state) when the loss or the gradient
    becomes non-finite, naming the step and the estimator.
    """
    if isinstance(config, str | Path):
        cfg = load_train_config(config)
    elif isinstance(config, dict):
        cfg = train_config_from_dict(config)
    else:
        cfg = config
    cfg_dict = config_to_dict(cfg)
    out_dir = _prepare_out(Path(out) if out else None, Path(resume) if resume else None, overwrite)
    say = log or (lambda m: None)

    try:
        data = cfg.task.build(cfg.seed)
        estimator = data.estimator(cfg.estimator)
        _check_compatible(estimator, data.problem)
    except (TaskError, ValueError) as e:
        raise ConfigError(f"{type(cfg.task).name}: {e}") from None
    opt = optimizer if optimizer is not None else cfg.optimizer.make()
    n_train = int(jax.tree.leaves(data.train)[0].shape[0])
    if cfg.batch_size > n_train:
        raise ConfigError(
            f"batch_size={cfg.batch_size} is larger than the task's {n_train} training examples"
        )
    # Strong dtypes, so that the first optimiser update does not change them (and retrace).
    params = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.asarray(x).dtype), data.params)
    params = project(params, cfg.constraints)
    opt_state = opt.init(params)
    base = data.problem.mask() if hasattr(data.problem, "mask") else None
    mask = partial_mask(params, cfg.train_fraction, cfg.seed, base)
    mesh = mesh_for(cfg.shard, cfg.batch_size, "batch_size")
    step_fn = make_step(data.problem, estimator, opt, mask, cfg.constraints, mesh)
    loss_fn = eqx.filter_jit(data.problem.loss)
    predict_fn = eqx.filter_jit(data.predict) if data.predict is not None else None

    start = 0
    metrics_path = out_dir / "metrics.jsonl" if out_dir else None
    ckpt = out_dir / CHECKPOINT if out_dir else None
    history: list[dict] = []
    if resume is not None:
        start, (params, opt_state) = load_checkpoint(ckpt, cfg_dict, (params, opt_state))
        if metrics_path.exists():
            for line in metrics_path.read_text().splitlines():
                row = json.loads(line)
                if row["step"] <= start:
                    history.append(row)
        if start >= cfg.steps:
            say(f"checkpoint is at step {start}; nothing left to do (steps={cfg.steps})")
        else:
            say(f"resuming from step {start} of {cfg.steps}")
    if out_dir is not None:
        import yaml

        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))

    def record(row):
        history.append(row)
        if metrics_path is not None:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    if start == 0:
        record({"step": 0, **_evaluate(data, params, loss_fn, predict_fn)})

    bar = _Progress(cfg.steps, cfg.batch_size, progress)
    t_start = time.perf_counter()
    u_all, t_all = data.train
    for step in range(start + 1, cfg.steps + 1):
        idx = batch_indices(cfg.seed, step, n_train, cfg.batch_size)
        new_params, new_state, loss, finite = step_fn(params, opt_state, u_all[idx], t_all[idx])
        if not bool(finite):
            bar.close()
            where = ""
            if ckpt is not None:
                save_checkpoint(ckpt, step - 1, cfg_dict, params, opt_state)
                where = f"; the last good state (step {step - 1}) is in {ckpt}"
            record({"step": step, "diverged": True, "loss": float(loss)})
            raise TrainingDiverged(
                f"step {step}: the loss or the gradient from estimator {cfg.estimator.name!r} "
                f"is not finite (batch loss {float(loss)}){where}. Lower the learning rate or "
                "the estimator's beta/eta."
            )
        params, opt_state = new_params, new_state
        row = {"step": step, "loss": float(loss), "time_s": time.perf_counter() - t_start}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            row.update(_evaluate(data, _one_device(params), loss_fn, predict_fn))
        record(row)
        bar.update(step, float(loss))
        if ckpt is not None and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            save_checkpoint(ckpt, step, cfg_dict, params, opt_state)

    summary = _summary(history, cfg)
    params = _one_device(params)
    if out_dir is not None:
        eqx.tree_serialise_leaves(out_dir / "params.eqx", params)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        _plots(history, data, params, out_dir)
    return TrainResult(params=params, history=history, summary=summary, task=data, out=out_dir)


def _summary(history: list[dict], cfg: TrainConfig) -> dict:
    evals = [r for r in history if "train_loss" in r]
    first, last = evals[0], evals[-1]
    out = {
        "task": type(cfg.task).name,
        "estimator": cfg.estimator.name,
        "steps": last["step"],
        "final_loss_ratio": last["train_loss"] / first["train_loss"],
        "test_loss_ratio": last["test_loss"] / first["test_loss"],
        "final_loss": last["train_loss"],
        "test_loss": last["test_loss"],
    }
    if "test_accuracy" in last:
        out["test_accuracy"] = last["test_accuracy"]
        out["train_accuracy"] = last["train_accuracy"]
    timed = [r for r in history if "time_s" in r]
    if timed:
        out["time_s"] = timed[-1]["time_s"]
    return out


def train_summary_line(summary: dict) -> str:
    """One line of ``key=value`` pairs, ``final_loss_ratio`` first."""
    keys = [
        "final_loss_ratio",
        "test_loss_ratio",
        "test_accuracy",
        "train_accuracy",
        "final_loss",
        "test_loss",
        "steps",
        "time_s",
        "task",
        "estimator",
    ]
    parts = []
    for k in keys:
        if k in summary:
            v = summary[k]
            parts.append(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)
