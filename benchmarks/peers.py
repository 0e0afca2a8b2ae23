"""Benchmark: fracprop against its peers, fdeint (fractional ODEs) and circulax (JAX circuits).

Two comparisons, each measured in this one run:

**fdeint** (PyTorch, `FDEint.FDEint`, Caputo FDE ``D^α y = f(t, y)`` by the Diethelm
predictor-corrector (PECE, Adams-Bashforth-Moulton product trapezoid) that sums the full
history every step, O(N²)), on the scalar relaxation ``D^{1/2} y = −λ y, y(0) = 1`` on
``[0, T]``, λ = 1, T = 1, whose exact solution is ``y = erfcx(λ √t)``. fracprop
solves it as a circuit: a unit step through ``R = 1/λ`` into a CPE (``C_α = 1``, α = ½) from
rest, so ``v_out = 1 − E_{1/2}(−λ√t) = 1 − erfcx(λ√t)`` and ``y = 1 − v_out`` (GL convolution
quadrature, order 1, MNA + Newton per step; history backend `Exact`, and `SOE` when fracprop has
it). Both run in float64 on the same uniform grid of N steps; both errors against erfcx are
reported, as the max over the grid and at ``t = T`` (``fdeint_speedup_equal_N``,
``fdeint_err_ratio_equal_N``). fdeint also runs on a ladder of coarser grids to find the N at
which it matches that first-order circuit run's error (``fdeint_speedup_matched`` for the max
error, ``..._at_T`` for the error at T). The headline ``fdeint_speedup`` and
``fdeint_err_ratio`` are at matched accuracy with fracprop's second-order scalar solver
`fp.solve_linear_fde` (FBDF2 + Lubich starting weights for γ = α, 2α, 3α; the starting weights
are not in the circuit stepper yet): the coarsest power-of-two N whose max error is at most
fdeint's at the largest N, the whole call timed (host starting weights included);
``fdeint_speedup`` = fdeint time / fracprop time, ``fdeint_err_ratio`` = fdeint max error /
fracprop max error (≥ 1: fracprop is at least as accurate); ``fdeint_speedup_at_T`` and
``fdeint_err_ratio_at_T_matched`` are the same matched at ``t = T``. fdeint runs with one
torch thread (``--torch-threads``; its fastest setting here: its per-step tensors are too
small for intra-op parallelism).

**circulax** (JAX, `setup_transient`, default BDF2 and, in the full run, SDIRK3), on an
integer-order RC ladder: a 1 V step (t > 0) into ``SECTIONS`` sections of R = 1 Ω, C = 1 F
from rest, on ``[0, 20 s]``. The exact solution is modal: ``v(t) = 1 − Q e^{−μt} Qᵀ 1`` with
``G = Q μ Qᵀ`` the ladder's conductance matrix (checked against `scipy.linalg.expm`). For each
simulator the step count N is chosen so that the max error over all nodes and grid points is
just below the same target (two pilot runs fit the observed order, then the predicted N is
checked; fracprop with ``method="gear"``, i.e. BDF2 for the capacitors started by one
backward-Euler step, circulax with BDF2/SDIRK3, so the step counts differ); then
both are timed at those N. circulax runs in its own virtual environment (it pins an older JAX),
created on first use, as a subprocess (`peers_circulax_worker.py`) that is started once and
answers one JSON line per run; it is timed in that process the same way (``jax.jit``,
``block_until_ready``, compile call separate). Both of its linear-solver backends (the default
KLU and dense) are timed at the matched N and the faster one is the reference. (circulax
0.1.7's SDIRK3 does not converge on this circuit, max error 0.24 at any N; the full run tries
it and reports it as excluded.) The venv lives in ``~/.cache/fracprop/venv-circulax``
(``--circulax-venv`` or ``$FRACPROP_CIRCULAX_VENV`` to move it).

Ratios are peer time / fracprop time (> 1: fracprop is faster) and peer error / fracprop error
(< 1: the peer is more accurate). Every time is a min (and median) over repeats after a
separate first (compile) call; calls under ~25 ms are repeated until 0.5 s is timed (at most 20
calls). If circulax cannot be installed or run, ``circulax_speedup=nan``
and the reason is printed and stored in the JSON.

Usage::

    python benchmarks/peers.py            # full run
    python benchmarks/peers.py --quick    # < 60 s on 2 cores (plus a one-time venv creation)
    python benchmarks/peers.py --skip-circulax --out DIR
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
import scipy
import scipy.linalg
from scipy.special import erfcx

jax.config.update("jax_enable_x64", True)

from _common import GL_FIXED, cpu_model, git_commit, summary_line  # noqa: E402

import fracprop as fp  # noqa: E402

# ---- fdeint problem: D^{1/2} y = -LAM y, y(0) = 1 on [0, T_FDE] -------------------------------
ALPHA = 0.5
LAM = 1.0
T_FDE = 1.0
FULL_FDE_NS = (256, 1024, 4096, 8192, 16384)
QUICK_FDE_NS = (256, 1024)
#: coarse grids on which fdeint looks for fracprop's accuracy
FDEINT_LADDER = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
#: GL on this problem (measured: max error 0.128/sqrt(N), error at T 0.073/N); a fracprop run
#: above these bounds is wrong, not slow.
FRACPROP_MAX_ERR_BOUND = 0.2  # / sqrt(N)
FRACPROP_END_ERR_BOUND = 0.1  # / N
SOE_VS_EXACT_TOL = 1e-9

# ---- circulax problem: RC ladder step response -------------------------------------------------
SECTIONS = 4
R_OHM = 1.0
C_FARAD = 1.0
V_STEP = 1.0
T_RC = 20.0  # the slowest time constant is 1/0.1206 = 8.3 s
PILOTS = (200, 800)
QUICK_TARGETS = (1e-3,)
FULL_TARGETS = (1e-3, 1e-4)
#: step-count cap of the matching search (backward Euler needed ~37k steps for 1e-4)
MAX_STEPS = 400_000
CIRCULAX_SPEC = "circulax==0.1.7"
DEFAULT_VENV = Path.home() / ".cache" / "fracprop" / "venv-circulax"
WORKER = Path(__file__).resolve().parent / "peers_circulax_worker.py"

FDE_COLUMNS = (
    "solver",
    "history",
    "N",
    "first_call_s",
    "min_s",
    "median_s",
    "repeats",
    "max_err",
    "err_at_T",
    "role",
)
RC_COLUMNS = (
    "solver",
    "method",
    "backend",
    "target_err",
    "N",
    "dt",
    "max_err",
    "compile_s",
    "min_s",
    "median_s",
    "repeats",
    "role",
)


# ------------------------------------------------------------------------------- helpers


def dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for children (the circulax worker)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def n_repeats(first_s: float, repeats: int, long_call_s: float = 2.0) -> int:
    return repeats if first_s < long_call_s else min(3, repeats)


#: short calls are repeated beyond `repeats` until this much time is timed (at most MAX_REPEATS)
MIN_TIMED_S = 0.5
MAX_REPEATS = 20


def time_calls(call, repeats: int) -> list[float]:
    """`repeats` timed calls, more for short ones; `call` must block until its result is ready."""
    out = []
    while len(out) < repeats or (0 < len(out) < MAX_REPEATS and sum(out) < MIN_TIMED_S):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def check_traj(traj, label: str) -> None:
    if not traj.ok:
        raise SystemExit(f"{label}: fracprop simulation failed: {traj.message()}")
    if not np.all(np.isfinite(np.asarray(traj.v))):
        raise SystemExit(f"{label}: non-finite node voltages")


def fmt(x, spec=".3g") -> str:
    if x is None:
        return ""
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, str):
        return x
    if isinstance(x, int):
        return str(x)
    return format(x, spec)


# ------------------------------------------------------------------ part 1: fdeint vs fracprop
def fractional_rc() -> fp.Circuit:
    """Unit step through R = 1/LAM into a CPE (C_alpha = 1): v_out = 1 - E_a(-LAM t^a)."""
    b = fp.CircuitBuilder("fractional RC: D^1/2 y = -lambda y as a step response")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0 / LAM)
    b.cpe("P1", "out", "0", c=1.0, alpha=ALPHA)
    return b.build()


def fde_reference(t: np.ndarray) -> np.ndarray:
    return erfcx(LAM * np.sqrt(t))


def fde_errors(y: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    e = np.abs(y - fde_reference(t))
    return float(e.max()), float(e[-1])


def history_backends() -> tuple[dict, dict]:
    """fracprop history backends to compare: Exact always, SOE when this fracprop has it."""
    backends, skipped = {"Exact": fp.Exact()}, {}
    soe = getattr(fp, "SOE", None)
    if soe is None:
        skipped["SOE"] = "fracprop has no SOE history backend"
    else:
        try:
            backends["SOE"] = soe()
        except Exception as exc:  # an SOE under construction must not break the benchmark
            skipped["SOE"] = f"SOE() failed: {type(exc).__name__}: {exc}"
    return backends, skipped


def _fde_row(solver: str, history: str, n: int, r: dict, role: str) -> dict:
    """One CSV row for a timed run of the scalar problem."""
    return {
        "solver": solver,
        "history": history,
        "N": n,
        "first_call_s": r["first_call_s"],
        "min_s": min(r["times_s"]),
        "median_s": statistics.median(r["times_s"]),
        "repeats": len(r["times_s"]),
        "max_err": r["max_err"],
        "err_at_T": r["err_at_T"],
        "role": role,
    }


def _ladder_row(
    solver: str, method: str, backend: str, target: float, n: int, r: dict, role: str
) -> dict:
    """One CSV row for a timed run of the RC ladder."""
    return {
        "solver": solver,
        "method": method,
        "backend": backend,
        "target_err": target,
        "N": n,
        "dt": T_RC / n,
        "max_err": r["max_err"],
        "compile_s": r["compile_s"],
        "min_s": min(r["times_s"]),
        "median_s": statistics.median(r["times_s"]),
        "repeats": len(r["times_s"]),
        "role": role,
    }


def run_fracprop_fde(circuit, n: int, history, repeats: int) -> dict:
    dt = T_FDE / n
    fn = jax.jit(lambda c: fp.simulate(c, dt=dt, steps=n, history=history, throw=False, **GL_FIXED))
    t0 = time.perf_counter()
    traj = jax.block_until_ready(fn(circuit))
    first = time.perf_counter() - t0
    check_traj(traj, f"fracprop N={n}")
    t = np.asarray(traj.ts)
    y = 1.0 - np.asarray(traj.node("out"))
    del traj
    times = time_calls(lambda: jax.block_until_ready(fn(circuit).v), n_repeats(first, repeats))
    max_err, end_err = fde_errors(y, t)
    return {
        "y": y,
        "first_call_s": first,
        "times_s": times,
        "max_err": max_err,
        "err_at_T": end_err,
    }


def run_fracprop_scalar(n: int, repeats: int) -> dict:
    """`fp.solve_linear_fde` (FBDF2 + 3 Lubich starting weights), whole call timed.

    The timed call includes the host computation of the starting weights (O(N²) NumPy), which
    depends on α and N only and could be cached; it is counted here anyway.
    """

    def solve():
        ts, y = fp.solve_linear_fde(LAM, ALPHA, 1.0, T_FDE, n)
        return jax.block_until_ready((ts, y))

    t0 = time.perf_counter()
    ts, y = solve()
    first = time.perf_counter() - t0
    y, t = np.asarray(y), np.asarray(ts)
    times = time_calls(solve, n_repeats(first, repeats))
    max_err, end_err = fde_errors(y, t)
    return {"first_call_s": first, "times_s": times, "max_err": max_err, "err_at_T": end_err}


def run_fdeint(n: int, repeats: int) -> dict:
    import torch
    from FDEint import FDEint

    t = torch.linspace(0.0, T_FDE, n + 1, dtype=torch.float64)
    y0 = torch.tensor([1.0], dtype=torch.float64)

    def rhs(_t, y):
        return -LAM * y

    def solve():
        with torch.no_grad():
            return FDEint(rhs, t, y0, ALPHA, dtype=torch.float64)

    t0 = time.perf_counter()
    sol = solve()
    first = time.perf_counter() - t0
    y = sol[0, :, 0].numpy().copy()
    times = time_calls(solve, n_repeats(first, repeats))
    max_err, end_err = fde_errors(y, t.numpy())
    ok = bool(np.all(np.isfinite(y))) and max_err < 0.05
    return {
        "ok": ok,
        "first_call_s": first,
        "times_s": times,
        "max_err": max_err,
        "err_at_T": end_err,
    }


def part_fdeint(args, repeats: int) -> dict:
    ns = QUICK_FDE_NS if args.quick else FULL_FDE_NS
    out: dict = {"rows": [], "skipped": [], "status": "ok"}
    try:
        import torch
        from FDEint import FDEint  # noqa: F401
    except ImportError as exc:
        out.update(status="failed", reason=f"fdeint/torch not importable: {exc}")
        print(f"fdeint: {out['reason']}", flush=True)
        return out
    # fdeint's work per step is a few small tensors (<= N elements), below torch's parallel
    # grain, so extra intra-op threads only add synchronisation; on a loaded 2-core machine
    # 2 threads made N=4096 take 1.2-15 s against a steady 0.34-0.43 s with 1 thread.
    out["torch_threads_default"] = torch.get_num_threads()
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    out["torch_threads"] = torch.get_num_threads()
    print(f"torch intra-op threads: {out['torch_threads']}", flush=True)

    circuit = fractional_rc()
    backends, out["history_skipped"] = history_backends()
    for name, why in out["history_skipped"].items():
        print(f"fracprop history {name}: skipped ({why})", flush=True)

    rows = out["rows"]
    last_fdeint: tuple[int, float] | None = None
    for n in ns:
        exact_y = None
        for hname, hist in list(backends.items()):
            try:
                r = run_fracprop_fde(circuit, n, hist, repeats)
            except SystemExit:
                raise
            except Exception as exc:
                if hname == "Exact":
                    raise
                why = f"{type(exc).__name__}: {exc}"
                print(f"fracprop history {hname}: dropped ({why})", flush=True)
                out["history_skipped"][hname] = why
                del backends[hname]
                continue
            # ---- correctness, before the time is used ----
            if (
                r["max_err"] > FRACPROP_MAX_ERR_BOUND / math.sqrt(n)
                or r["err_at_T"] > FRACPROP_END_ERR_BOUND / n
            ):
                raise SystemExit(
                    f"fracprop {hname} N={n}: error {r['max_err']:.3g} (max) / "
                    f"{r['err_at_T']:.3g} (t=T) above the GL bounds"
                )
            if hname == "Exact":
                exact_y = r["y"]
            else:
                dev = float(np.max(np.abs(r["y"] - exact_y)))
                if dev > SOE_VS_EXACT_TOL:
                    raise SystemExit(f"fracprop {hname} N={n} deviates from Exact by {dev:.3g}")
            rows.append(_fde_row("fracprop", hname, n, r, "equal_N"))
            print(
                f"fracprop {hname:<6} N={n:<6} first {r['first_call_s']:6.2f} s  "
                f"min {min(r['times_s']):8.4f} s  max err {r['max_err']:.3e}  "
                f"err(T) {r['err_at_T']:.3e}",
                flush=True,
            )
        if last_fdeint is not None and args.budget_s > 0:
            pred = last_fdeint[1] * (n / last_fdeint[0]) ** 2 * 4
            if pred > args.budget_s:
                print(f"fdeint N={n}: skipped, predicted {pred:.0f} s > --budget-s", flush=True)
                out["skipped"].append({"solver": "fdeint", "N": n, "predicted_s": pred})
                continue
        r = run_fdeint(n, repeats)
        if not r["ok"]:
            out.update(status="failed", reason=f"fdeint N={n}: max error {r['max_err']:.3g}")
            print(out["reason"], flush=True)
            return out
        last_fdeint = (n, min(r["times_s"]))
        rows.append(_fde_row("fdeint", "full (PECE)", n, r, "equal_N"))
        print(
            f"fdeint          N={n:<6} first {r['first_call_s']:6.2f} s  "
            f"min {min(r['times_s']):8.4f} s  max err {r['max_err']:.3e}  "
            f"err(T) {r['err_at_T']:.3e}",
            flush=True,
        )

    # ---- headline at the largest N both ran: fracprop's fastest history backend ----
    fd = {r["N"]: r for r in rows if r["solver"] == "fdeint" and r["role"] == "equal_N"}
    n_max = max(fd)
    fr = min(
        (r for r in rows if r["solver"] == "fracprop" and r["N"] == n_max),
        key=lambda r: r["min_s"],
    )
    f = fd[n_max]
    out["headline"] = {
        "N": n_max,
        "fracprop_history": fr["history"],
        "fracprop_min_s": fr["min_s"],
        "fdeint_min_s": f["min_s"],
        "fracprop_max_err": fr["max_err"],
        "fdeint_max_err": f["max_err"],
        "fracprop_err_at_T": fr["err_at_T"],
        "fdeint_err_at_T": f["err_at_T"],
        "fdeint_speedup_equal_N": f["min_s"] / fr["min_s"],
        "fdeint_err_ratio_equal_N": f["max_err"] / fr["max_err"],
        "fdeint_err_ratio_at_T": f["err_at_T"] / fr["err_at_T"],
    }

    # ---- matched accuracy, second order: fracprop's scalar FBDF2 solver with starting weights
    # (`solve_linear_fde`) on the coarsest power-of-two grid whose error is at most fdeint's at
    # n_max, in the max norm (headline fdeint_speedup / fdeint_err_ratio) and at t = T
    # (fdeint_speedup_at_T / fdeint_err_ratio_at_T_matched) ----
    scalar = {}

    def scalar_run(n):
        if n not in scalar:
            scalar[n] = run_fracprop_scalar(n, repeats)
            r = scalar[n]
            print(
                f"fracprop FBDF2+SW N={n:<6} first {r['first_call_s']:6.2f} s  "
                f"min {min(r['times_s']):8.4f} s  max err {r['max_err']:.3e}  "
                f"err(T) {r['err_at_T']:.3e}",
                flush=True,
            )
        return scalar[n]

    for metric, suffix in (("max_err", ""), ("err_at_T", "_at_T")):
        n = 16
        while scalar_run(n)[metric] > f[metric] and n < n_max:
            n *= 2
        r = scalar_run(n)
        if r[metric] > f[metric]:
            rows.append(_fde_row("fracprop solve_linear_fde", "FBDF2 + 3 SW", n, r, "unmatched"))
            continue
        rows.append(
            _fde_row(
                "fracprop solve_linear_fde",
                "FBDF2 + 3 starting weights",
                n,
                r,
                f"matched_{metric}_of_fdeint_N{n_max}",
            )
        )
        ratio_key = "fdeint_err_ratio" if metric == "max_err" else "fdeint_err_ratio_at_T_matched"
        out["headline"].update(
            {
                f"fracprop_fbdf2{suffix}_N": n,
                f"fracprop_fbdf2{suffix}_min_s": min(r["times_s"]),
                f"fracprop_fbdf2{suffix}_max_err": r["max_err"],
                f"fracprop_fbdf2{suffix}_err_at_T": r["err_at_T"],
                f"fdeint_speedup{suffix}": f["min_s"] / min(r["times_s"]),
                ratio_key: f[metric] / r[metric],
            }
        )
        print(
            f"fracprop FBDF2+SW reaches fdeint's {metric} {f[metric]:.3e} (N={n_max}) at "
            f"N={n}: speedup {f['min_s'] / min(r['times_s']):.1f}",
            flush=True,
        )

    # ---- matched accuracy: the coarsest fdeint grid that reaches fracprop's error at n_max,
    # in the max norm over the grid and at t = T ----
    todo = {"max_err": fr["max_err"], "err_at_T": fr["err_at_T"]}
    for n in FDEINT_LADDER:
        if n > n_max or not todo:
            break
        r = run_fdeint(n, repeats)
        for metric, target in list(todo.items()):
            if not (r["ok"] and r[metric] <= target):
                continue
            del todo[metric]
            suffix = "" if metric == "max_err" else "_at_T"
            rows.append(
                _fde_row("fdeint", "full (PECE)", n, r, f"matched_{metric}_of_fracprop_N{n_max}")
            )
            out["headline"].update(
                {
                    f"fdeint_matched{suffix}_N": n,
                    f"fdeint_matched{suffix}_err": r[metric],
                    f"fdeint_matched{suffix}_min_s": min(r["times_s"]),
                    f"fdeint_speedup_matched{suffix}": min(r["times_s"]) / fr["min_s"],
                }
            )
            print(
                f"fdeint reaches fracprop's {metric} {target:.3e} (N={n_max}) at N={n}: "
                f"{r[metric]:.3e}, min {min(r['times_s']):.4f} s",
                flush=True,
            )
    return out


# ------------------------------------------------------------------ part 2: circulax vs fracprop
def ladder_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Conductance matrix G (n x n) and source vector b of the capacitor nodes.

    The ladder obeys C v' = -G v + b V.
    """
    n = SECTIONS
    g = 1.0 / R_OHM
    G = np.zeros((n, n))
    for k in range(n):  # resistor k+1 joins node k (or the source, k = 0) and node k+1
        G[k, k] += g
        if k > 0:
            G[k - 1, k - 1] += g
            G[k, k - 1] -= g
            G[k - 1, k] -= g
    b = np.zeros(n)
    b[0] = g
    return G, b


class LadderReference:
    """Exact step response of the RC ladder from rest (modal form), checked against expm."""

    def __init__(self):
        G, b = ladder_matrices()
        self.mu, self.Q = np.linalg.eigh(G / C_FARAD)
        self.v_inf = np.linalg.solve(G, b * V_STEP)
        self.c = self.Q.T @ self.v_inf
        # the modal form against the matrix exponential of the linear ODE
        A = -G / C_FARAD
        for t in (0.0, 0.37, 3.0, T_RC):
            ref = self.v_inf - scipy.linalg.expm(A * t) @ self.v_inf
            dev = np.max(np.abs(ref - self(np.array([t]))[0]))
            if dev > 1e-12:
                raise SystemExit(f"ladder reference: modal form and expm differ by {dev:.3g}")

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(len(t), SECTIONS) node voltages."""
        return self.v_inf[None, :] - (np.exp(-np.outer(t, self.mu)) * self.c[None, :]) @ self.Q.T

    def max_err(self, t: np.ndarray, v: np.ndarray) -> float:
        return float(np.max(np.abs(v - self(t))))


def rc_ladder() -> fp.Circuit:
    b = fp.CircuitBuilder(f"RC ladder, {SECTIONS} sections, step")
    b.vsource("V1", "n0", "0", V_STEP)
    for k in range(1, SECTIONS + 1):
        b.resistor(f"R{k}", f"n{k - 1}", f"n{k}", R_OHM)
        b.capacitor(f"C{k}", f"n{k}", "0", C_FARAD)
    return b.build()


class NotConverging(RuntimeError):
    """A method whose error does not fall with the step size (or needs absurd N)."""


def match_steps(label: str, run, target: float, repeats: int, log: list) -> dict:
    """Smallest N (a multiple of 8) whose max error is <= target, found from the observed order.

    ``run(N, repeats) -> dict(max_err=…, …)``. Two pilot runs (`PILOTS`) give the order p;
    then N = N1 (e1/target)^{1/p} is tried and raised until the error is below the target.
    Raises `NotConverging` when the observed order is below 0.5 or N would exceed `MAX_STEPS`.
    """
    hist = []
    for n in PILOTS:
        r = run(n, 0)
        hist.append((n, r["max_err"]))
        log.append({"solver": label, "N": n, "max_err": r["max_err"], "role": "pilot"})
    (n0, e0), (n1, e1) = hist
    p = math.log(e0 / e1) / math.log(n1 / n0) if e1 > 0 else 4.0
    if not p >= 0.5:
        raise NotConverging(
            f"{label}: max error {e0:.3g} at N={n0} and {e1:.3g} at N={n1} "
            f"(observed order {p:.2f}): does not converge on this circuit"
        )
    p = min(p, 4.0)
    n = n1 * (e1 / target) ** (1.0 / p) * 1.02
    for _ in range(6):
        n = max(16, 8 * math.ceil(n / 8))
        if n > MAX_STEPS:
            raise NotConverging(f"{label}: max error {target:g} would need N = {n} > {MAX_STEPS}")
        r = run(n, repeats)
        log.append({"solver": label, "N": n, "max_err": r["max_err"], "role": "candidate"})
        print(f"  {label}: N={n:<7} max err {r['max_err']:.3e} (target {target:.0e})", flush=True)
        if r["max_err"] <= target:
            return r | {"N": n, "observed_order": p}
        n = n * (r["max_err"] / target) ** (1.0 / p) * 1.05
    raise RuntimeError(f"{label}: no N reached max error {target:g}")


def fracprop_rc_runner(circuit, reference: LadderReference, kernel=None):
    kernel = fp.FBDF2() if kernel is None else kernel

    def run(n: int, repeats: int) -> dict:
        dt = T_RC / n
        fn = jax.jit(
            lambda c: fp.simulate(
                c, dt=dt, steps=n, kernel=kernel, method="gear", uic=True, throw=False, substeps=1
            )
        )
        t0 = time.perf_counter()
        traj = jax.block_until_ready(fn(circuit))
        compile_s = time.perf_counter() - t0
        check_traj(traj, f"fracprop RC N={n}")
        t = np.asarray(traj.ts)
        v = np.stack([np.asarray(traj.node(f"n{k}")) for k in range(1, SECTIONS + 1)], axis=1)
        del traj
        times = time_calls(lambda: jax.block_until_ready(fn(circuit).v), repeats)
        return {"max_err": reference.max_err(t, v), "compile_s": compile_s, "times_s": times}

    return run


class CirculaxWorker:
    """circulax in its own venv, driven over a pipe (one JSON object per line)."""

    def __init__(self, python: Path, tmpdir: Path):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.proc = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(tmpdir),
        )
        self.tmpdir = tmpdir
        self.count = 0

    def request(self, **req) -> dict:
        if self.proc.poll() is not None:
            raise RuntimeError(f"circulax worker exited with code {self.proc.returncode}")
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"circulax worker died (exit code {self.proc.wait()})")
        ans = json.loads(line)
        if "error" in ans:
            raise RuntimeError(f"circulax worker: {ans['error']}")
        return ans

    def run(self, reference: LadderReference, n: int, repeats: int, **kw) -> dict:
        self.count += 1
        path = self.tmpdir / f"run{self.count}.npz"
        ans = self.request(cmd="run", N=n, repeats=repeats, out=str(path), **kw)
        if not ans["ok"]:
            raise RuntimeError(f"circulax run N={n} {kw} did not succeed: {ans}")
        data = np.load(path)
        t, v = data["ts"], data["v"]
        if not np.all(np.isfinite(v)) or np.max(np.abs(t - np.linspace(0, T_RC, n + 1))) > 1e-9:
            raise RuntimeError(f"circulax run N={n}: non-finite values or unexpected save times")
        return ans | {"max_err": reference.max_err(t, v)}

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
        except (OSError, subprocess.SubprocessError):
            self.proc.kill()


def ensure_circulax_venv(venv: Path) -> tuple[Path | None, float, float, str | None]:
    """(python of the venv, wall and CPU seconds spent creating it, failure reason)."""
    python = venv / "bin" / "python"
    # cheap: finds the package without importing it (an import failure shows up in the worker)
    probe = [
        str(python),
        "-c",
        "import importlib.util as u, sys; sys.exit(u.find_spec('circulax') is None)",
    ]

    def works() -> bool:
        if not python.exists():
            return False
        return subprocess.run(probe, capture_output=True, timeout=300).returncode == 0

    if works():
        return python, 0.0, 0.0, None
    print(
        f"creating circulax venv at {venv} ({CIRCULAX_SPEC}, one-time, not counted in the "
        f"benchmark time) ...",
        flush=True,
    )
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    try:
        if not python.exists():
            if venv.exists():
                shutil.rmtree(venv)
            venv.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", CIRCULAX_SPEC],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            why = "pip install failed: " + " | ".join(tail)
            return None, time.perf_counter() - t0, cpu_seconds() - cpu0, why
    except (OSError, subprocess.SubprocessError) as exc:
        why = f"venv creation failed: {exc}"
        return None, time.perf_counter() - t0, cpu_seconds() - cpu0, why
    spent, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    if not works():
        return None, spent, cpu, "circulax installed but `import circulax` fails in the venv"
    print(f"circulax venv created in {spent:.1f} s (one-time)", flush=True)
    return python, spent, cpu, None


def part_circulax(args, repeats: int) -> dict:
    out: dict = {"rows": [], "calibration": [], "status": "ok", "venv": str(args.circulax_venv)}
    targets = QUICK_TARGETS if args.quick else FULL_TARGETS
    reference = LadderReference()
    circuit = rc_ladder()
    frac_run = fracprop_rc_runner(circuit, reference)

    # ---- fracprop (BDF2: method="gear", one backward-Euler start step) at each target ----
    frac = {}
    for target in targets:
        r = match_steps("fracprop", frac_run, target, repeats, out["calibration"])
        frac[target] = r
        out["rows"].append(
            _ladder_row(
                "fracprop",
                "BDF2 (gear, BE start)",
                "dense MNA",
                target,
                r["N"],
                r,
                "matched",
            )
        )

    if args.skip_circulax:
        out.update(status="skipped", reason="--skip-circulax")
        return out

    python, venv_s, venv_cpu_s, why = ensure_circulax_venv(Path(args.circulax_venv))
    out["venv_creation_s"] = venv_s
    out["venv_creation_cpu_s"] = venv_cpu_s
    if python is None:
        out.update(status="failed", reason=why)
        print(f"circulax unavailable: {why}", flush=True)
        return out

    tmp = Path(tempfile.mkdtemp(prefix="fracprop-peers-"))
    worker = None
    try:
        t0 = time.perf_counter()
        worker = CirculaxWorker(python, tmp)
        info = worker.request(cmd="setup", sections=SECTIONS, R=R_OHM, C=C_FARAD, V=V_STEP, T=T_RC)
        out["worker_start_s"] = time.perf_counter() - t0
        out["versions"] = {k: v for k, v in info.items() if k not in ("ok", "netlist")}
        out["netlist"] = info["netlist"]
        print(
            f"circulax {info['circulax_version']} (jax {info['jax_version']}, diffrax "
            f"{info['diffrax_version']}, klujax {info['klujax_version']}) "
            f"in {python.parent.parent}",
            flush=True,
        )
        methods = ["default"] if args.quick else ["default", "sdirk3"]
        out["excluded"] = {}
        for target in targets:
            for method in list(methods):
                label = f"circulax/{method}"
                try:
                    r = match_steps(
                        label,
                        lambda n, k, m=method: worker.run(reference, n, k, solver=m),
                        target,
                        repeats,
                        out["calibration"],
                    )
                except NotConverging as exc:
                    if method == "default":
                        raise
                    # a broken optional method is reported, not compared (and not retried)
                    out["excluded"][method] = str(exc)
                    methods.remove(method)
                    print(f"  {label}: excluded: {exc}", flush=True)
                    continue
                runs = {"default": r}
                # the other linear-solver backend at the same N (same error, different speed)
                runs["dense"] = worker.run(
                    reference, r["N"], repeats, solver=method, backend="dense"
                )
                for backend, rr in runs.items():
                    out["rows"].append(
                        _ladder_row(
                            "circulax",
                            f"{rr['transient_solver']}",
                            f"{backend} ({rr['linear_solver']})",
                            target,
                            r["N"],
                            rr,
                            "matched",
                        )
                    )
        if not args.quick:
            # per-step cost at equal N: circulax's default method at fracprop's matched N
            target = targets[-1]
            n = frac[target]["N"]
            for backend in ("default", "dense"):
                rr = worker.run(reference, n, repeats, backend=backend)
                out["rows"].append(
                    _ladder_row(
                        "circulax",
                        rr["transient_solver"],
                        f"{backend} ({rr['linear_solver']})",
                        target,
                        n,
                        rr,
                        "equal_N",
                    )
                )
    except Exception as exc:  # an unusable peer gives nan, never a made-up number
        out.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        print(f"circulax comparison failed: {out['reason']}", flush=True)
        return out
    finally:
        if worker is not None:
            worker.close()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- headline: tightest target, circulax's fastest configuration vs fracprop ----
    heads = {}
    for target in targets:
        fr = next(r for r in out["rows"] if r["solver"] == "fracprop" and r["target_err"] == target)
        cands = [
            r
            for r in out["rows"]
            if r["solver"] == "circulax" and r["target_err"] == target and r["role"] == "matched"
        ]
        best = min(cands, key=lambda r: r["min_s"])
        heads[target] = {
            "target_err": target,
            "fracprop_N": fr["N"],
            "fracprop_max_err": fr["max_err"],
            "fracprop_min_s": fr["min_s"],
            "circulax_N": best["N"],
            "circulax_method": best["method"],
            "circulax_backend": best["backend"],
            "circulax_max_err": best["max_err"],
            "circulax_min_s": best["min_s"],
            "circulax_speedup": best["min_s"] / fr["min_s"],
        }
    out["by_target"] = [heads[t] for t in targets]
    out["headline"] = heads[targets[-1]]
    eq = [r for r in out["rows"] if r["role"] == "equal_N"]
    if eq:
        fr = out["headline"]
        best = min(eq, key=lambda r: r["min_s"])
        out["headline"]["circulax_speedup_equal_N"] = best["min_s"] / fr["fracprop_min_s"]
        out["headline"]["circulax_equal_N_backend"] = best["backend"]
    return out


# ----------------------------------------------------------------------------------- main
def write_csv(path: Path, rows: list[dict], columns) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def print_rows(rows: list[dict], columns) -> None:
    widths = {c: max(len(c), *(len(fmt(r.get(c), ".4g")) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(fmt(r.get(c), ".4g").ljust(widths[c]) for c in columns))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 60 s)")
    p.add_argument("--out", default="results/peers", help="output directory")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; quick 3)")
    p.add_argument(
        "--budget-s",
        type=float,
        default=120.0,
        help="skip an fdeint N whose predicted time (N^2 from the previous N, 4 calls) exceeds "
        "this; 0 = never skip",
    )
    p.add_argument(
        "--circulax-venv",
        default=os.environ.get("FRACPROP_CIRCULAX_VENV", str(DEFAULT_VENV)),
        help="virtualenv for circulax (created when missing; default "
        "$FRACPROP_CIRCULAX_VENV or ~/.cache/fracprop/venv-circulax)",
    )
    p.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for fdeint (default 1, its fastest setting here; "
        "0 = torch's default)",
    )
    p.add_argument("--skip-fdeint", action="store_true")
    p.add_argument("--skip-circulax", action="store_true")
    args = p.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    wall0 = time.perf_counter()

    device = jax.devices()[0]
    print(
        f"fracprop {fp.__version__}, jax {jax.__version__}, torch {dist_version('torch')}, "
        f"fdeint {dist_version('fdeint')}, {device.platform} ({device.device_kind}), "
        f"{os.cpu_count()} CPUs, float64",
        flush=True,
    )

    if args.skip_fdeint:
        fde = {"status": "skipped", "reason": "--skip-fdeint", "rows": []}
    else:
        print(
            f"\n== fdeint: D^{ALPHA} y = -{LAM:g} y, y(0)=1, t in [0, {T_FDE:g}], "
            f"reference erfcx(lambda sqrt t) ==",
            flush=True,
        )
        t0 = time.perf_counter()
        fde = part_fdeint(args, repeats)
        fde["wall_s"] = time.perf_counter() - t0
        print(f"(fdeint part: {fde['wall_s']:.1f} s)", flush=True)
    print(
        f"\n== circulax: RC ladder, {SECTIONS} sections, R={R_OHM:g} ohm, C={C_FARAD:g} F, "
        f"{V_STEP:g} V step, t in [0, {T_RC:g}] s, reference: modal exact solution ==",
        flush=True,
    )
    t0 = time.perf_counter()
    rc = part_circulax(args, repeats)
    venv_s = rc.get("venv_creation_s", 0.0)
    rc["wall_s"] = time.perf_counter() - t0 - venv_s
    print(f"(circulax part: {rc['wall_s']:.1f} s without the venv creation)", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "fdeint.csv", fde["rows"], FDE_COLUMNS)
    write_csv(out / "circulax.csv", rc["rows"], RC_COLUMNS)
    cversions = rc.get("versions", {})
    meta = {
        "benchmark": "peers",
        "device": {
            "platform": device.platform,
            "device_kind": device.device_kind,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            "fracprop": fp.__version__,
            "jax": jax.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "torch": dist_version("torch"),
            "fdeint": dist_version("fdeint"),
            "circulax": cversions.get("circulax_version"),
            "circulax_env": cversions or None,
            "python": platform.python_version(),
        },
        "git_commit": git_commit(),
        "dtype": "float64",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "quick": bool(args.quick),
        "repeats": repeats,
        "fdeint_problem": {
            "equation": "Caputo D^alpha y = -lambda y, y(0) = 1",
            "alpha": ALPHA,
            "lambda": LAM,
            "T": T_FDE,
            "reference": "erfcx(lambda sqrt(t))",
            "fracprop": "equal N: unit step through R = 1/lambda into a CPE (C_alpha = 1), "
            "from rest; y = 1 - v_out; GL kernel. Matched accuracy (fdeint_speedup, "
            "fdeint_err_ratio): solve_linear_fde (FBDF2 + starting weights for gamma = "
            "alpha, 2 alpha, 3 alpha), whole call timed, starting weights included",
            "fdeint": "FDEint.FDEint(f=-lambda*y, t=linspace(0,T,N+1), y0=1, alpha, "
            "dtype=float64) under torch.no_grad(): Diethelm PECE, full O(N^2) history; "
            "torch intra-op threads per --torch-threads (default 1)",
            "errors": "max_err = max over the N+1 grid points; err_at_T = at t = T",
        },
        "circulax_problem": {
            "circuit": f"{V_STEP:g} V step (t > 0) -> {SECTIONS} x (series R {R_OHM:g} ohm, "
            f"shunt C {C_FARAD:g} F), from rest",
            "T": T_RC,
            "reference": "v(t) = v_inf - Q exp(-mu t) Q^T v_inf (eigh of G/C), checked "
            "against scipy.linalg.expm to 1e-12",
            "error": "max over all capacitor nodes and the N+1 grid points",
            "matching": f"pilot N {PILOTS}, observed order, smallest multiple of 8 with "
            "max_err <= target",
            "fracprop": "simulate(uic=True, method='gear'): BDF2 for the capacitors, "
            "started by one backward-Euler step",
            "circulax": "setup_transient, ConstantStepSize dt=T/N, SaveAt(ts=grid), "
            "y0 = zeros, inside jax.jit",
        },
        "one_time_venv_creation_s": venv_s,
        "wall_s": time.perf_counter() - wall0 - venv_s,
        "cpu_s": cpu_seconds() - rc.get("venv_creation_cpu_s", 0.0),
        "load_average": list(os.getloadavg()),
    }
    result = {
        "meta": meta,
        "fdeint": fde,
        "circulax": rc,
    }
    with open(out / "peers.json", "w") as f:
        json.dump(result, f, indent=2, default=float)

    print()
    if fde["rows"]:
        print_rows(fde["rows"], FDE_COLUMNS)
        print()
    if rc["rows"]:
        print_rows(rc["rows"], RC_COLUMNS)
    for method, why in rc.get("excluded", {}).items():
        print(f"circulax method {method} excluded: {why}")
    if rc["status"] != "ok":
        print(f"circulax: {rc['status']}: {rc.get('reason')}")
    if fde["status"] != "ok":
        print(f"fdeint: {fde['status']}: {fde.get('reason')}")
    print(f"wrote {out / 'fdeint.csv'}, {out / 'circulax.csv'} and {out / 'peers.json'}")
    print(
        f"benchmark wall time {meta['wall_s']:.1f} s, CPU time {meta['cpu_s']:.1f} s "
        f"(one-time circulax venv creation: {venv_s:.1f} s, not included), "
        f"load average {meta['load_average'][0]:.1f} on {os.cpu_count()} CPUs"
    )

    nan = float("nan")
    fh = fde.get("headline", {})
    ch = rc.get("headline", {})
    summary = {
        "fdeint_speedup": fh.get("fdeint_speedup", nan),
        "fdeint_err_ratio": fh.get("fdeint_err_ratio", nan),
        "fdeint_fracprop_N": fh.get("fracprop_fbdf2_N", 0),
        "fdeint_speedup_at_T": fh.get("fdeint_speedup_at_T", nan),
        "fdeint_err_ratio_at_T_matched": fh.get("fdeint_err_ratio_at_T_matched", nan),
        "fdeint_fracprop_N_at_T": fh.get("fracprop_fbdf2_at_T_N", 0),
        "fdeint_speedup_equal_N": fh.get("fdeint_speedup_equal_N", nan),
        "fdeint_err_ratio_equal_N": fh.get("fdeint_err_ratio_equal_N", nan),
        "fdeint_err_ratio_at_T": fh.get("fdeint_err_ratio_at_T", nan),
        "fdeint_N": fh.get("N", 0),
        "fdeint_speedup_matched": fh.get("fdeint_speedup_matched", nan),
        "fdeint_speedup_matched_at_T": fh.get("fdeint_speedup_matched_at_T", nan),
        "circulax_speedup": ch.get("circulax_speedup", nan),
        "circulax_target_err": ch.get("target_err", nan),
        "circulax_N": ch.get("circulax_N", 0),
        "fracprop_rc_N": ch.get("fracprop_N", 0),
        "circulax_speedup_equal_N": ch.get("circulax_speedup_equal_N", nan),
        "correct": 1,
        "quick": int(args.quick),
    }
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
