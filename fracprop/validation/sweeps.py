"""Regime sweeps of every estimator against `jax.grad`."""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Literal

import jax

from .._learning.estimators import EP, Autodiff
from .._learning.networks import NetworkSpec, regime_problem
from .._learning.sharding import sharded_estimate
from ..experiments import registry
from ..experiments.config import ConfigError, load_config, mesh_for, to_dict
from .compare import compare, fit_slope


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """What `run_validation` sweeps. Each list is one sweep around the base point.

    - ``batch``: examples per sweep point (default 1). With ``B > 1`` every point has ``B``
      input waveforms for the same network and teacher (`fracprop.regime_problem` with
      ``batch=B``), and every gradient, the reference included, is the batch mean.
    - ``shard``: split that batch over all visible devices, parameters replicated
      (`fracprop.sharded_estimate`): ``auto`` (the default: when there are several devices
      and ``batch`` is a multiple of their number), ``on`` (``batch`` must be a multiple of
      the device count) or ``off``. With ``batch: 1`` there is nothing to split, so ``auto``
      runs on one device and ``on`` is an error. A sharded sweep gives the unsharded numbers
      to round-off (`tests/test_validation.py`).
    """

    network: NetworkSpec = NetworkSpec()
    steps: int = 300
    beta: float = 1e-3
    eta: float = 1e-3
    estimators: tuple[str, ...] = (
        "replay",
        "ep",
        "ep_symmetric",
        "ep_half",
        "ep_capacitor",
        "coupled",
    )
    omega_tau: tuple[float, ...] = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
    betas: tuple[float, ...] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)
    beta_omega_tau: float = 0.1
    steps_sweep: tuple[int, ...] = (150, 300, 600)
    alphas: tuple[float, ...] = (0.3, 0.5, 0.8, 1.0)
    periods: tuple[float, ...] = (0.5, 1.0, 2.0)
    depths: tuple[int, ...] = (1, 2)
    widths: tuple[int, ...] = (2, 4, 8)
    seeds: tuple[int, ...] = (0, 1, 2)
    sweep_omega_tau: float = 1.0
    batch: int = 1
    shard: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self):
        positive = {
            "steps": [self.steps],
            "steps_sweep": self.steps_sweep,
            "beta": [self.beta],
            "eta": [self.eta],
            "betas": self.betas,
            "omega_tau": self.omega_tau,
            "beta_omega_tau": [self.beta_omega_tau],
            "periods": self.periods,
            "depths": self.depths,
            "widths": self.widths,
            "sweep_omega_tau": [self.sweep_omega_tau],
            "batch": [self.batch],
        }
        for key, values in positive.items():
            for x in values:
                if not x > 0:
                    raise ValueError(f"{key}={x!r} must be a positive number")
        for a in self.alphas:
            if not 0 < a <= 1:
                raise ValueError(f"alphas: alpha={a!r} must lie in (0, 1]")
        if self.shard not in ("auto", "on", "off"):
            raise ValueError(f"shard={self.shard!r} is not one of 'auto', 'on', 'off'")


#: The estimators a validation sweep compares with `jax.grad` (names of the registry's
#: transient table, `fracprop.experiments.registry`).
ESTIMATOR_NAMES = ("replay", "ep", "ep_symmetric", "ep_half", "ep_capacitor", "coupled")


def make_estimator(name: str, beta: float, eta: float):
    """Estimator and the loss order of its reference gradient, by registry name."""
    estimator = registry.make_estimator(name, beta=beta, eta=eta, error=ValueError)
    return estimator, estimator.order


def load_validation_config(path) -> ValidationConfig:
    """Load and check a validation config (unknown keys and wrong types are errors; so is
    ``shard: on`` with a ``batch`` that the visible devices do not divide)."""
    cfg = load_config(ValidationConfig, path)
    for name in cfg.estimators:
        make_estimator(name, cfg.beta, cfg.eta)
    try:
        _mesh(cfg)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg


def _mesh(cfg: ValidationConfig):
    """The batch mesh of ``cfg.shard`` and ``cfg.batch``, or ``None`` (one device)."""
    return mesh_for(cfg.shard, cfg.batch, "batch")


def _problem(cfg: ValidationConfig, omega_tau, **kwargs):
    """``regime_problem`` with ``cfg.batch`` examples (unbatched for ``batch: 1``)."""
    return regime_problem(omega_tau, batch=cfg.batch if cfg.batch > 1 else None, **kwargs)


def _estimate(estimator, problem, params, u, targets, mesh):
    """``estimator(problem, params, u, targets)``, with the batch sharded when ``mesh``."""
    if mesh is None:
        return estimator(problem, params, u, targets)
    return sharded_estimate(estimator, problem, params, u, targets, mesh)


def _gradients(cfg: ValidationConfig, omega_tau, names, mesh=None, **kwargs) -> dict:
    """``{name: (gradient, reference, seconds)}`` at one sweep point (``kwargs``: the
    `regime_problem` options)."""
    kwargs = {"spec": cfg.network, "steps": cfg.steps, **kwargs}
    problem, u, targets = _problem(cfg, omega_tau, **kwargs)
    params = problem.params()
    refs, out = {}, {}
    for name in names:
        est, order = make_estimator(name, cfg.beta, cfg.eta)
        if order not in refs:
            refs[order] = _estimate(Autodiff(order=order), problem, params, u, targets, mesh)
        t0 = time.perf_counter()
        g = jax.block_until_ready(_estimate(est, problem, params, u, targets, mesh))
        out[name] = (g, refs[order], time.perf_counter() - t0)
    return out


def _point(cfg: ValidationConfig, omega_tau, names, *, mesh=None, **kwargs) -> list[dict]:
    rows = []
    for name, (g, ref, seconds) in _gradients(cfg, omega_tau, names, mesh, **kwargs).items():
        m = compare(g, ref)["overall"]
        m.update(estimator=name, seconds=seconds)
        rows.append(m)
    return rows


def beta_sweep(cfg: ValidationConfig, *, seed: int = 0, mesh=None) -> dict:
    """Error of EP(β) against its own exact β → 0 limit (forward-mode in β); fitted slopes.

    ``mesh``: split the batch (``cfg.batch`` examples) over its devices (default: one device).
    """
    problem, u, targets = _problem(
        cfg, cfg.beta_omega_tau, spec=cfg.network, steps=cfg.steps, seed=seed
    )
    params = problem.params()
    limit = _estimate(EP(limit=True), problem, params, u, targets, mesh)
    rows = []
    for sym in (False, True):
        for beta in cfg.betas:
            g = _estimate(EP(beta=beta, symmetric=sym), problem, params, u, targets, mesh)
            m = compare(g, limit)["overall"]
            rows.append({"symmetric": sym, "beta": beta, "rel_err": m["rel_l2"]})
    slopes = {
        "one_sided": fit_slope(
            [r["beta"] for r in rows if not r["symmetric"]],
            [r["rel_err"] for r in rows if not r["symmetric"]],
        ),
        "symmetric": fit_slope(
            [r["beta"] for r in rows if r["symmetric"]],
            [r["rel_err"] for r in rows if r["symmetric"]],
        ),
    }
    return {"omega_tau": cfg.beta_omega_tau, "rows": rows, "slopes": slopes}


def run_validation(cfg: ValidationConfig, *, progress=print) -> dict:
    """Run every sweep of ``cfg``; returns the report as plain data.

    With ``cfg.batch`` examples per point and ``cfg.shard`` allowing it, every gradient is
    computed with the batch split over all visible devices (``report["devices"]`` says how
    many were used).

    **Raises** `ConfigError` for ``shard: on`` with a ``batch`` that is not a multiple of the
    device count.
    """
    names = tuple(cfg.estimators)
    mesh = _mesh(cfg)
    report: dict = {
        "config": to_dict(cfg),
        "jax_version": jax.__version__,
        "device": str(jax.devices()[0]),
        "devices": 1 if mesh is None else int(mesh.size),
        "x64": bool(jax.config.jax_enable_x64),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sweeps": {},
    }

    def record(axis, value, rows):
        for r in rows:
            r[axis] = value
        report["sweeps"].setdefault(axis, []).extend(rows)

    for wt in cfg.omega_tau:
        progress(f"omega_tau={wt:g}")
        record("omega_tau", wt, _point(cfg, wt, names, mesh=mesh))
    progress("beta sweep")
    report["beta"] = beta_sweep(cfg, mesh=mesh)
    base = cfg.sweep_omega_tau
    for steps in cfg.steps_sweep:
        progress(f"steps={steps}")
        record("steps", steps, _point(cfg, base, names, mesh=mesh, steps=steps))
    for alpha in cfg.alphas:
        progress(f"alpha={alpha:g}")
        spec = dataclasses.replace(cfg.network, alpha=alpha)
        record("alpha", alpha, _point(cfg, base, names, mesh=mesh, spec=spec))
    for per in cfg.periods:
        progress(f"periods={per:g}")
        record("periods", per, _point(cfg, base, names, mesh=mesh, periods=per))
    for depth in cfg.depths:
        progress(f"depth={depth}")
        spec = dataclasses.replace(cfg.network, hidden=(cfg.network.hidden[0],) * depth)
        record("depth", depth, _point(cfg, base, names, mesh=mesh, spec=spec))
    for width in cfg.widths:
        progress(f"width={width}")
        spec = dataclasses.replace(cfg.network, hidden=(width,) * len(cfg.network.hidden))
        record("width", width, _point(cfg, base, names, mesh=mesh, spec=spec))
    for seed in cfg.seeds:
        progress(f"seed={seed}")
        spec = dataclasses.replace(cfg.network, seed=seed)
        record("seed", seed, _point(cfg, base, names, mesh=mesh, spec=spec, seed=seed))
    return report
