"""YAML configs loaded into frozen dataclasses, with strict key and type checking."""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import jax
from jax.sharding import Mesh

from .._learning.sharding import batch_mesh

T = TypeVar("T")


class ConfigError(ValueError):
    """An unknown key, a value of the wrong type, or a missing required field in a config."""


class TaskError(ValueError):
    """A task option that cannot be built."""


class TrainingError(RuntimeError):
    """A run that cannot start or continue (bad output folder, bad checkpoint)."""


class TrainingDiverged(TrainingError):
    """The loss or the gradient became non-finite; the last good state was kept."""


def _convert(value: Any, tp: Any, where: str, source: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where} must be a mapping of {tp.__name__} fields")
        return from_dict(tp, value, source=source, prefix=f"{where}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{source}: {where} has a bad value")
    if origin is typing.Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(args):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if value not in args:
            raise ConfigError(
                f"{source}: {where}={value!r} is not one of {', '.join(map(repr, args))}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: {where}={value!r} must be a list")
        if len(args) > 1 and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(
                    f"{source}: {where}={value!r} must be a list of exactly {len(args)} values"
                )
            return tuple(
                _convert(v, a, f"{where}[{k}]", source) for k, (v, a) in enumerate(zip(value, args))
            )
        item = args[0] if args else Any
        return tuple(_convert(v, item, f"{where}[{k}]", source) for k, v in enumerate(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{source}: {where}={value!r} must be a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {where}={value!r} must be an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}={value!r} must be true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}={value!r} must be a string")
        return value
    return value


def from_dict(cls: type[T], data: dict, *, source: str = "<config>", prefix: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, rejecting unknown keys."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix + unknown[0]!r}; known keys are "
            f"{', '.join(prefix + k for k in fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {prefix}{name!r}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        where = f" ({prefix.rstrip('.')})" if prefix else ""
        raise ConfigError(f"{source}{where}: {e}") from None


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a YAML file into ``cls``."""
    return from_dict(cls, read_yaml(path), source=str(path))


def optional_module(name: str, purpose: str):
    """The module ``name`` of the ``experiments`` extra, imported on first use, or an
    `ImportError` that says to install the extra."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(
            f"{purpose} needs {name}: install fracprop[experiments] "
            "(pip install 'fracprop[experiments]')"
        ) from None


def _yaml():
    """The ``yaml`` module (PyYAML, part of the ``experiments`` extra), imported on first use."""
    return optional_module("yaml", "reading YAML configs")


def read_yaml(path: str | Path):
    """The data of a YAML file; a missing file or bad YAML is a `ConfigError`."""
    yaml = _yaml()
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    return data


def to_dict(obj) -> dict:
    """The resolved config as plain data (for saving next to results)."""

    def plain(x):
        if isinstance(x, tuple | list):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    return plain(dataclasses.asdict(obj))


def mesh_for(shard: str, batch_size: int, what: str = "batch_size") -> Mesh | None:
    """The batch mesh for a config's ``shard: on | auto | off``, or ``None`` for one device.

    ``auto`` shards when there are several devices and ``batch_size`` is a multiple of their
    number; ``on`` always builds the mesh and raises `ConfigError` (naming ``what``) when it
    is not a multiple; ``off`` never shards.
    """
    if shard not in ("on", "auto", "off"):
        raise ConfigError(f"shard={shard!r} is not one of 'on', 'auto', 'off'")
    devices = jax.device_count()
    if shard == "off" or (shard == "auto" and (devices == 1 or batch_size % devices)):
        return None
    if batch_size % devices:
        raise ConfigError(
            f"shard='on' needs {what} ({batch_size}) to be a multiple of the "
            f"{devices} visible devices"
        )
    return batch_mesh()
