# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Where each learning rule can be trusted: the ωτ regime map
#
# A learning problem (see docs/design.md) has the loss over the simulated trajectory
#
# $$J = \tfrac12 \sum_n dt \sum_k (v_k[n] - T_k[n])^2$$
#
# over the output nodes k, and the parameters are the synapse conductances g_l. We compare
# four local estimators of dJ/dg_l with the reference, `fp.Autodiff()` (`jax.grad` of J
# through the whole trajectory):
#
# - `Replay()`: the adjoint network, run on reversed time and driven by the output error;
#   dJ/dg_l = −Σ_n v_l[n] λ_l[n].
# - `EP(beta)` (seed eq. 33): a free and a nudged phase, the outputs tied to their targets by
#   a conductance βG; ĝ_l = (Q_l(β) − Q_l(0)) / (2Gβ) with Q_l = Σ_n dt v_l[n]².
# - `EP(beta, symmetric=True)`: ±β nudging, ĝ_l = (Q_l(β) − Q_l(−β)) / (4Gβ).
# - `CoupledLearning(eta)`: outputs clamped at v + η(T − v);
#   ĝ_l = (Q_l^clamped − Q_l^free) / (2η).
#
# The network is `fp.regime_problem(ωτ)`: 2 sampled inputs, 4 hidden neurons (capacitor ∥
# tanh fractional memristor, α = ½), 1 output, every node time constant τ = 1, inputs
# multi-sines of base angular frequency ω = ωτ/τ, targets from a perturbed teacher network.
# ωτ ≪ 1 is the quasi-static regime, ωτ ≳ 1 the dynamic one.
#
# Set `FRACPROP_SMOKE=1` for the small CI run (3 values of ωτ, 200 steps; the full run is the
# README's regime table: 7 values, 400 steps) and `FRACPROP_NOTEBOOK_OUT=DIR` to save the figure.

# %%
import os
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

SMOKE = os.environ.get("FRACPROP_SMOKE", "") not in ("", "0")
if SMOKE:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import fracprop as fp  # noqa: E402

OUT = Path(os.environ["FRACPROP_NOTEBOOK_OUT"]) if os.environ.get("FRACPROP_NOTEBOOK_OUT") else None

if SMOKE:
    OMEGA_TAU, STEPS = (1e-3, 1e-2, 1.0), 200  # the size of tests/test_estimators.py
else:
    OMEGA_TAU, STEPS = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0), 400  # the README's table

ESTIMATORS = {
    "Replay()": fp.Replay(),
    "EP(β=1e-3)": fp.EP(beta=1e-3),
    "EP(β=1e-3, symmetric)": fp.EP(beta=1e-3, symmetric=True),
    "CoupledLearning(η=1e-3)": fp.CoupledLearning(eta=1e-3),
}
STYLE = {"EP(β=1e-3, symmetric)": "x--"}  # on top of the one-sided EP curve

# %% [markdown]
# ## The sweep
#
# For each ωτ: one reference gradient, then every estimator, compared by
# `fp.validation.compare` (cosine, norm ratio ‖est‖/‖ref‖, relative L2 error).

# %%
rows = []  # (omega_tau, estimator, metrics)
t0 = time.perf_counter()
for wt in OMEGA_TAU:
    problem, u, targets = fp.regime_problem(wt, steps=STEPS)
    params = problem.params()
    reference = fp.Autodiff()(problem, params, u, targets)
    for name, est in ESTIMATORS.items():
        m = fp.validation.compare(est(problem, params, u, targets), reference)["overall"]
        rows.append((wt, name, m))
print(f"{len(OMEGA_TAU)} values of ωτ, {STEPS} steps: {time.perf_counter() - t0:.1f} s\n")

print(f"{'ωτ':>6}  {'estimator':<24} {'cosine':>9} {'norm ratio':>10} {'rel. error':>10}")
for wt, name, m in rows:
    print(f"{wt:6g}  {name:<24} {m['cosine']:9.5f} {m['norm_ratio']:10.3g} {m['rel_l2']:10.2g}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for name in ESTIMATORS:
    wts = [wt for wt, n, _ in rows if n == name]
    ms = [m for _, n, m in rows if n == name]
    style = STYLE.get(name, "o-")
    ax1.semilogx(wts, [m["cosine"] for m in ms], style, label=name)
    ax2.loglog(wts, [m["rel_l2"] for m in ms], style, label=name)
for ax in (ax1, ax2):
    ax.axvspan(min(OMEGA_TAU) / 2, 1e-2, color="0.9", zorder=0, label="quasi-static, ωτ ≤ 0.01")
    ax.set_xlabel("ωτ")
ax1.axhline(0, color="k", lw=0.5)
ax1.set(ylabel="cosine with jax.grad", title="direction")
ax2.set(ylabel="‖est − grad‖ / ‖grad‖", title="relative error")
ax1.legend(fontsize=8)
fig.tight_layout()
if OUT is not None:
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "02_estimator_regimes.png", dpi=120, bbox_inches="tight")
if SMOKE:
    plt.close(fig)
else:
    plt.show()

# %% [markdown]
# ## What the library claims, checked
#
# These are the bounds of the test suite (`tests/test_estimators.py`) and the README's
# "trust it" column, not values read off this run:
#
# - `Replay()` is the exact discrete adjoint: equal to `jax.grad` up to the Newton tolerance
#   (test bound 1e-6 relative on this nonlinear network; cosine > 1 − 1e-10) at every ωτ.
# - `EP`, one-sided and symmetric: cosine ≥ 0.9999 in the quasi-static regime (ωτ ≤ 0.01).
# - `EP` at ωτ = 1: cosine < 0.5, it is not the gradient there.
# - `CoupledLearning`: cosine ≥ 0.999 at ωτ = 1e-3 (direction only: the README gives its
#   norm as the gradient's scaled by the output's driving-point conductance).


# %%
def metric(name, wt, key="cosine"):
    return next(m[key] for w, n, m in rows if n == name and w == wt)


for wt in OMEGA_TAU:
    assert metric("Replay()", wt) > 1 - 1e-10, wt
    assert metric("Replay()", wt, "rel_l2") <= 1e-6, wt
for wt in (w for w in OMEGA_TAU if w <= 1e-2):
    assert metric("EP(β=1e-3)", wt) >= 0.9999, wt
    assert metric("EP(β=1e-3, symmetric)", wt) >= 0.9999, wt
assert metric("EP(β=1e-3)", 1.0) < 0.5
assert metric("CoupledLearning(η=1e-3)", 1e-3) >= 0.999
print("all claims hold")

# %% [markdown]
# ## Reading the map
#
# - **Replay** is exact everywhere: the circuit is reciprocal, so the adjoint of the step map
#   is the same circuit on reversed time (Tellegen's theorem). Its relative error
#   is round-off.
# - **EP** is a forward-in-time contrast. In the quasi-static limit the forward sensitivity
#   and the adjoint coincide, and EP points along the gradient. In the dynamic regime the
#   gradient needs the adjoint, which runs backwards in time, and EP is biased, even
#   reversed. Symmetric nudging removes the O(β) bias only, so its curve lies on the
#   one-sided one: the bias is not an O(β) effect.
# - **Coupled learning** follows EP's direction in the quasi-static regime, but not its
#   scale (see the norm ratio in the table), so its relative error stays large even where its
#   cosine is ≈ 1.
