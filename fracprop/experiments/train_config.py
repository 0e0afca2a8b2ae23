"""Training configuration: frozen dataclasses read from YAML."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Literal

from .config import ConfigError, from_dict, optional_module, read_yaml, to_dict
from .tasks import TASKS, AbstractTask, TaskError


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
        optax = optional_module("optax", "training")

        if not isinstance(self.options, dict):
            raise ValueError(f"optimizer.options={self.options!r} must be a mapping")
        fn = getattr(optax, self.name, None)
        if not callable(fn) or self.name.startswith("_"):
            raise ValueError(f"optimizer.name={self.name!r} is not an optax optimiser")
        if not (self.learning_rate > 0):
            raise ValueError(f"optimizer.learning_rate={self.learning_rate} must be positive")

    def make(self):
        optax = optional_module("optax", "training")

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
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    constraints: Constraints = dataclasses.field(default_factory=Constraints)
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
