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
# # fracprop quick start: a fractional RC circuit
#
# A resistor R in series with a constant-phase element (CPE, `i = C_α ᶜD^α v`),
# driven by a 1 V step at t = 0+. We build it with `fp.CircuitBuilder`, simulate it with
# `fp.simulate`, check it against its closed form, take a `jax.grad` through the
# whole trajectory, and build the same circuit from a SPICE netlist.
#
# Set `FRACPROP_SMOKE=1` for the small CI run and `FRACPROP_NOTEBOOK_OUT=DIR` to save the
# figures. Open it as a notebook with `jupytext --to notebook 01_quickstart.py`, or run it
# as a script.

# %%
import os
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

SMOKE = os.environ.get("FRACPROP_SMOKE", "") not in ("", "0")
if SMOKE:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.special import erfcx  # noqa: E402

import fracprop as fp  # noqa: E402

OUT = Path(os.environ["FRACPROP_NOTEBOOK_OUT"]) if os.environ.get("FRACPROP_NOTEBOOK_OUT") else None


def show(fig, name):
    """Save to $FRACPROP_NOTEBOOK_OUT if set; show only when interactive (not in smoke mode)."""
    if OUT is not None:
        OUT.mkdir(parents=True, exist_ok=True)
        fig.savefig(OUT / f"{name}.png", dpi=120, bbox_inches="tight")
    if SMOKE:
        plt.close(fig)
    else:
        plt.show()


# %% [markdown]
# ## 1. Build the circuit
#
# With R = 1 Ω and C_α = 1 the time constant τ = (R C_α)^{1/α} is 1 s.

# %%
R, C_ALPHA, ALPHA, V = 1.0, 1.0, 0.5, 1.0

b = fp.CircuitBuilder("fractional RC")
b.vsource("V1", "in", "0", V)  # step at t = 0+
b.resistor("R1", "in", "out", R)
b.cpe("P1", "out", "0", c=C_ALPHA, alpha=ALPHA)  # i = C_α ᶜD^α v
circuit = b.build()
print(circuit)

# %% [markdown]
# ## 2. Simulate and compare with the Mittag-Leffler closed form
#
# `fp.simulate` solves the modified nodal equations on the grid t_n = n·dt. This section uses
# the scheme of Kendall (2021), `kernel=fp.GL(), starting=False` on a fixed grid: the fractional
# derivative is the Grünwald–Letnikov convolution D^α x(t_n) ≈ h^{−α} Σ_k w_k x_{n−k},
# w_0 = 1, w_k = w_{k−1}(1 − (α+1)/k). (The defaults are more accurate; see the end of this
# section.) Circuits with fractional elements start
# from rest.
#
# The exact step response is
#
# $$v_C(t) = V\,\bigl(1 - E_\alpha(-t^\alpha/(R C_\alpha))\bigr),\qquad
#   E_{1/2}(-x) = \operatorname{erfcx}(x),$$
#
# so for α = ½, v_C(t) = V(1 − erfcx(√t/(R C_α))).
#
# The test suite (`tests/test_simulate.py`) bounds the error at the end of a run over five
# time constants, t = 5τ, with N = 4096 steps, by 1e-4·V. We use the same grid and assert the
# same bound.

# %%
T_END, N = 5.0, 4096  # five time constants, the test suite's grid


def closed_form(t, r=R):
    return V * (1.0 - erfcx(np.sqrt(t) / (r * C_ALPHA)))


GL_SCHEME = dict(kernel=fp.GL(), starting=False, substeps=1)
traj = fp.simulate(circuit, dt=T_END / N, steps=N, **GL_SCHEME)
ts, v_out = np.asarray(traj.ts), np.asarray(traj.node("out"))
err = np.abs(v_out - closed_form(ts))
print(f"error at t = 5τ:        {err[-1]:.3e} V   (bound 1e-4·V)")
print(f"largest error, t ≥ τ:   {err[ts >= 1.0].max():.3e} V")
print(f"largest error, any t:   {err.max():.3e} V at t = {ts[err.argmax()]:.2e} s")
assert err[-1] <= 1e-4 * V, err[-1]

# %% [markdown]
# The largest error sits at the first steps: near t = 0 the solution behaves like t^α, where
# the GL error is O(h^α) rather than O(h) (docs/design.md §2).
#
# **Convergence.** Away from t = 0, GL is first order. The test suite fits the order over
# N = 512 … 4096 and requires it in [0.9, 1.1]; here the error is taken at t = 5τ. The full
# run adds finer grids to the plot.

# %%
sizes = [512, 1024, 2048, 4096] + ([] if SMOKE else [8192, 16384])
final_err = []
for n in sizes:
    tr = fp.simulate(circuit, dt=T_END / n, steps=n, **GL_SCHEME)
    final_err.append(abs(float(tr.node("out")[-1]) - closed_form(T_END)))
    print(f"N = {n:5d}: error at t = 5τ {final_err[-1]:.3e} V")
order = -np.polyfit(np.log(sizes[:4]), np.log(final_err[:4]), 1)[0]
print(f"fitted order over N = 512 … 4096: {order:.3f}")
assert 0.9 <= order <= 1.1, order

# %% [markdown]
# With the defaults (`FBDF2` with Lubich starting weights and time-error control) the same
# grid is second order from the first step on: the largest error over every point is
# far smaller (`tests/test_starting.py` measures the order).

# %%
default = fp.simulate(circuit, dt=T_END / N, steps=N)
err_default = np.abs(np.asarray(default.node("out")) - closed_form(np.asarray(default.ts)))
print(f"defaults: largest error, any t: {err_default.max():.3e} V (GL: {err.max():.3e} V)")
assert err_default.max() <= 1e-2 * err.max()

# %%
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.6))
ax1.plot(ts, v_out, label="fracprop (GL, N = 4096)")
ax1.plot(ts[::128], closed_form(ts[::128]), "k.", label="1 − erfcx(√t)")
ax1.set(xlabel="t / τ", ylabel="v_out / V", title="step response")
ax1.legend()
ax2.semilogy(ts[1:], err[1:])
ax2.axhline(1e-4, color="k", ls=":", label="1e-4·V (bound at t = 5τ)")
ax2.set(xlabel="t / τ", ylabel="|error| / V", title="error, N = 4096")
ax2.legend()
ax3.loglog(sizes, final_err, "o-", label="error at t = 5τ")
ax3.loglog(sizes, final_err[0] * sizes[0] / np.asarray(sizes), "k:", label="slope −1")
ax3.set(xlabel="N", ylabel="|error| / V", title="convergence")
ax3.legend()
fig.tight_layout()
show(fig, "01_fractional_rc")

# %% [markdown]
# ## 3. Gradients with `jax.grad`
#
# Every element parameter is an array leaf, so `jax.grad` differentiates the whole
# trajectory (Newton steps carry the implicit-function-theorem derivative). Here: the
# derivative of v_out(5τ) with respect to the conductance g = 1/R of R1.
#
# Closed form, with x = √t·g/C_α and erfcx′(x) = 2x·erfcx(x) − 2/√π:
# ∂v_C/∂g = −V·erfcx′(x)·√t/C_α. The simulation's derivative differs from it by the
# discretisation error, so we print that difference; what we assert is the test suite's
# claim that `jax.grad` agrees with central finite differences of the same simulation to
# 1e-6 relative.

# %%
N_GRAD = 1024 if SMOKE else 4096


def v_end(g):
    return fp.simulate(circuit.set("R1", "g", g), dt=T_END / N_GRAD, steps=N_GRAD, substeps=1).node(
        "out"
    )[-1]


g0 = 1.0 / R
dv_dg = float(jax.grad(v_end)(g0))

x = np.sqrt(T_END) * g0 / C_ALPHA
exact = -V * (2 * x * erfcx(x) - 2 / np.sqrt(np.pi)) * np.sqrt(T_END) / C_ALPHA

h = 1e-3  # 4th-order central differences: truncation O(h⁴), round-off O(ε/h)
f = [float(v_end(g0 + k * h)) for k in (-2, -1, 1, 2)]
fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)

print(f"jax.grad:            dv_out(5τ)/dg = {dv_dg:.10f}")
print(f"finite differences:  dv_out(5τ)/dg = {fd:.10f}   rel. diff {abs(dv_dg / fd - 1):.1e}")
print(f"closed form:         dv_out(5τ)/dg = {exact:.10f}   difference {abs(dv_dg - exact):.1e}")
assert abs(dv_dg - fd) <= 1e-6 * abs(fd)

# %% [markdown]
# The README's loss on the whole trajectory works the same way, e.g. ∂/∂g Σ_n v_out[n]²:


# %%
def loss(g):
    return (
        fp.simulate(circuit.set("R1", "g", g), dt=1e-3, steps=500, substeps=1).node("out") ** 2
    ).sum()


print("d loss / dg =", float(jax.grad(loss)(g0)))

# %% [markdown]
# ## 4. The same circuit from a netlist
#
# `fp.parse_netlist` reads a SPICE-style deck (the syntax is in `help(fp.parse_netlist)`);
# `FCAP` is fracprop's model card for a CPE. The `.tran` card gives the grid. The parsed
# circuit has the same elements, so on the same grid it gives the same trajectory.

# %%
deck = """Fractional RC
V1 in 0 1
R1 in out 1
C1 out 0 CPE1
.model CPE1 FCAP(c=1 alpha=0.5)
.tran 1m 5
.end
"""
net = fp.parse_netlist(deck)
print(net)
steps = round(net.tran.tstop / net.tran.tstep)
traj_net = fp.simulate(net.circuit, dt=net.tran.tstep, steps=steps, substeps=1)
traj_built = fp.simulate(circuit, dt=net.tran.tstep, steps=steps, substeps=1)
diff = float(np.max(np.abs(np.asarray(traj_net.node("out")) - np.asarray(traj_built.node("out")))))
print(f"netlist vs builder, {steps} steps: max difference {diff:.1e} V")
assert diff <= 1e-12
