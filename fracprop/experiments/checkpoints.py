"""Checkpoints: `eqx.tree_serialise_leaves` plus a JSON header; never pickle."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx

from .config import TrainingError
from .train_config import config_hash

CHECKPOINT = "checkpoint.eqx"


FORMAT = "fracprop-checkpoint"


VERSION = 1


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
