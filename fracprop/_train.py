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
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, from_dict, read_yaml, to_dict
from ._sharding import _mesh_for, _sharded_loss_and_estimate, sharded_step
from ._tasks import TASKS, AbstractTask, TaskData, TaskError

CHECKPOINT = "checkpoint.eqx"
FORMAT = "fracprop-checkpoint"
VERSION = 1


class TrainingError(RuntimeError):
    """A run that cannot start or continue (bad output folder, bad checkpoint)."""


class TrainingDiverged(TrainingError):
    """The loss or the gradient became non-finite; the last good state was kept."""


# -- configuration -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EstimatorConfig:
    """Which gradient estimator trains the network.

    ``name``: ``ep``, ``ep_symmetric``, ``replay``, ``coupled``, ``autodiff`` (transient tasks);
    resistive tasks also accept ``ep_limit`` and ``analytic``. ``beta`` is the EP nudge
    strength, ``eta`` the coupled-learning clamping factor, ``order`` the contrast/loss order γ.
    """

    name: str
    beta: float = 1e-3
    eta: float = 1e-3
    order: float = 0.0


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """An optax optimiser by name (``optax.<name>(learning_rate, **options)``)."""

    name: str = "adam"
    learning_rate: float = 1e-2
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        import optax

        if not isinstance(self.options, dict):
            raise ValueError(f"optimizer.options={self.options!r} must be a mapping")
        fn = getattr(optax, self.name, None)
        if not callable(fn) or self.name.startswith("_"):
            raise ValueError(f"optimizer.name={self.name!r} is not an optax optimiser")
        if not (self.learning_rate > 0):
            raise ValueError(f"optimizer.learning_rate={self.learning_rate} must be positive")

    def make(self):
        import optax

        try:
            return getattr(optax, self.name)(self.learning_rate, **self.options)
        except TypeError as e:
            raise ConfigError(f"optimizer {self.name!r}: {e}") from None


@dataclasses.dataclass(frozen=True)
class Constraints:
    """Physical bounds on the trained parameters (projection after every step)."""

    g_min: float = 1e-3
    g_max: float = 1e2
    alpha_min: float = 0.05

    def __post_init__(self):
        if not (0 < self.g_min < self.g_max):
            raise ValueError(f"constraints: need 0 < g_min < g_max; got {self.g_min}, {self.g_max}")
        if not (0 < self.alpha_min <= 1):
            raise ValueError(f"constraints.alpha_min={self.alpha_min} must lie in (0, 1]")


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Settings:
    """Every field of a `TrainConfig` but the task (parsed generically by `from_dict`)."""

    estimator: EstimatorConfig
    optimizer: OptimizerConfig = OptimizerConfig()
    constraints: Constraints = Constraints()
    steps: int = 300
    batch_size: int = 4
    eval_every: int = 25
    checkpoint_every: int = 50
    train_fraction: float = 1.0
    seed: int = 0
    shard: Literal["auto", "on", "off"] = "off"

    def __post_init__(self):
        for key in ("steps", "batch_size", "eval_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be a positive integer")
        if not (0 < self.train_fraction <= 1):
            raise ValueError(f"train_fraction={self.train_fraction} must lie in (0, 1]")
        if self.seed < 0:
            raise ValueError(f"seed={self.seed} must be a non-negative integer")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(_Settings):
    """A training run (the YAML file of ``fracprop train``).

    - ``task``: a mapping with ``name`` (one of the registered tasks) and that task's options.
    - ``estimator``, ``optimizer``, ``constraints``: see `EstimatorConfig`, `OptimizerConfig`,
      `Constraints`.
    - ``steps``: optimiser steps; ``batch_size``: examples per step.
    - ``eval_every``: evaluate (full train and test sets) every so many steps;
      ``checkpoint_every``: write ``checkpoint.eqx`` every so many steps (and at the end).
    - ``train_fraction``: train only a random fraction ``p`` of the trainable entries.
    - ``seed``: the task's data and initial parameters, the batch order and the partial mask.
    - ``shard``: split each batch over all visible devices (parameters replicated): ``on``
      (``batch_size`` must be a multiple of the device count), ``auto`` (when there are several
      devices and it is), or ``off`` (the default). Transient and resistive (DC) tasks give
      the single-device run to round-off (tested on 8 fake CPU devices). In YAML a bare
      ``on``/``off`` (a YAML boolean) is read as ``"on"``/``"off"``.
    """

    task: Any

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.task, dict):
            object.__setattr__(self, "task", _task_from_dict(self.task, "TrainConfig"))
        if not isinstance(self.task, AbstractTask):
            raise ValueError(
                f"task={self.task!r} must be a task (e.g. {{'name': 'teacher_student'}}); "
                f"known tasks are {', '.join(TASKS)}"
            )
        if self.estimator.name not in type(self.task).estimators:
            raise ValueError(
                f"estimator.name={self.estimator.name!r} is not available for task "
                f"{type(self.task).name!r}; choose from {', '.join(type(self.task).estimators)}"
            )


def _task_from_dict(data, source: str) -> AbstractTask:
    if isinstance(data, AbstractTask):
        return data
    if not isinstance(data, dict) or "name" not in data:
        raise ConfigError(f"{source}: task must be a mapping with a 'name' key")
    data = dict(data)
    name = data.pop("name")
    if name not in TASKS:
        raise ConfigError(
            f"{source}: task.name={name!r} is not a known task; choose from {', '.join(TASKS)}"
        )
    try:
        return from_dict(TASKS[name], data, source=source, prefix="task.")
    except TaskError as e:
        raise ConfigError(f"{source}: {e}") from None


def train_config_from_dict(data: dict, source: str = "<config>") -> TrainConfig:
    """Build a `TrainConfig` from plain data; unknown keys and wrong types are `ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values")
    if "task" not in data:
        raise ConfigError(f"{source}: missing required key 'task'")
    data = dict(data)
    task = _task_from_dict(data.pop("task"), source)
    placeholder = from_dict(_Settings, data, source=source)
    try:
        return TrainConfig(task=task, **{f.name: getattr(placeholder, f.name) for f in _fields()})
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def _fields():
    return dataclasses.fields(_Settings)


def load_train_config(path) -> TrainConfig:
    """Read a YAML training config (errors name the key and the file)."""
    return train_config_from_dict(read_yaml(path), source=str(path))


def config_to_dict(cfg: TrainConfig) -> dict:
    """The resolved config as plain data, task name first."""
    out = {"task": {"name": type(cfg.task).name, **to_dict(cfg.task)}}
    out.update({f.name: _plain(getattr(cfg, f.name)) for f in _fields()})
    return out


def _plain(x):
    if dataclasses.is_dataclass(x):
        return to_dict(x)
    return x


def config_hash(cfg_dict: dict, ignore=("steps", "eval_every", "checkpoint_every")) -> str:
    """Hash of everything that determines the trajectory of a run (not its length)."""
    kept = {k: v for k, v in cfg_dict.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


# -- the step --------------------------------------------------------------------------------------


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
    import optax

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
        updates, new_state = optimizer.update(grads, opt_state, params)
        new_params = project(optax.apply_updates(params, updates), constraints)
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


# -- checkpoints -----------------------------------------------------------------------------------


def save_checkpoint(path: Path, step: int, cfg_dict: dict, params, opt_state) -> None:
    """Write atomically: a JSON header line, then the serialised ``(params, opt_state)``."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "step": int(step),
        "config_hash": config_hash(cfg_dict),
        "config": cfg_dict,
    }
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, (params, opt_state))
    os.replace(tmp, path)


def read_header(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline().decode())
    except FileNotFoundError:
        raise TrainingError(f"no checkpoint at {str(path)!r}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TrainingError(f"{path} is not a fracprop checkpoint (bad header)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TrainingError(f"{path} is not a fracprop checkpoint (bad header)")
    if header.get("version") != VERSION:
        raise TrainingError(
            f"{path} has checkpoint format version {header.get('version')}; this fracprop "
            f"reads version {VERSION}"
        )
    return header


def load_checkpoint(path: Path, cfg_dict: dict, like) -> tuple[int, Any]:
    """Read a checkpoint made by the same config; returns ``(step, (params, opt_state))``."""
    header = read_header(path)
    if header["config_hash"] != config_hash(cfg_dict):
        old = header.get("config", {})
        lengths = ("steps", "eval_every", "checkpoint_every")
        diff = sorted(
            k
            for k in set(old) | set(cfg_dict)
            if k not in lengths and old.get(k) != cfg_dict.get(k)
        )
        raise TrainingError(
            f"checkpoint {path} was made with a different config (differs in: "
            f"{', '.join(diff) or 'unknown'}); resume with the config it was made with"
        )
    try:
        with open(path, "rb") as f:
            f.readline()
            state = eqx.tree_deserialise_leaves(f, like)
            rest = f.read()
    except Exception as e:  # numpy/equinox raise several types for short or corrupt files
        raise TrainingError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {e})"
        ) from None
    if rest:
        raise TrainingError(f"checkpoint {path} has trailing data; it does not match this task")
    return int(header["step"]), state


# -- progress --------------------------------------------------------------------------------------


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


# -- the loop --------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """The outcome of `train`: final parameters, the metric history and the summary."""

    params: Any
    history: list[dict]
    summary: dict
    task: TaskData
    out: Path | None


def _check_compatible(estimator, problem) -> None:
    """Fail before tracing when a transient estimator cannot estimate the trainable set."""
    from ._estimators import AbstractEstimator, _check_synapses
    from ._learning import LearningProblem

    if (
        isinstance(estimator, AbstractEstimator)
        and isinstance(problem, LearningProblem)
        and estimator.synapses_only
    ):
        _check_synapses(problem, type(estimator).__name__)


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
    mesh = _mesh_for(cfg.shard, cfg.batch_size, "batch_size")
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


def _plots(history: list[dict], data: TaskData, params, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history if "loss" in r]
    losses = [r["loss"] for r in history if "loss" in r]
    evals = [r for r in history if "train_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(steps, losses, lw=0.8, alpha=0.6, label="batch loss")
    ax.semilogy([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train")
    ax.semilogy([r["step"] for r in evals], [r["test_loss"] for r in evals], "s-", label="test")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=110)
    plt.close(fig)
    if evals and "test_accuracy" in evals[-1]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "test"):
            ax.plot(
                [r["step"] for r in evals],
                [r[f"{split}_accuracy"] for r in evals],
                "o-",
                label=split,
            )
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy.png", dpi=110)
        plt.close(fig)
    if data.plot is not None:
        data.plot(params, out_dir / "trajectories.png")


__all__ = [
    "Constraints",
    "EstimatorConfig",
    "OptimizerConfig",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingError",
    "batch_indices",
    "load_train_config",
    "make_step",
    "partial_mask",
    "project",
    "train",
    "train_config_from_dict",
]
