"""Integer-order capacitors and inductors step with the kernel's multistep method (float64).

`GL` steps them with backward Euler (order 1) and `FBDF2` with BDF2 started by one
backward-Euler step (order 2; `AbstractKernel.integer_weights`). The orders are fitted
against closed-form solutions of RC, RL and series RLC circuits, from rest (a source step at
``t = 0+``) and from a nonzero DC operating point.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp
from fracprop._learning.estimators import _with_targets

T_END = 5.0
#: The errors are maxima over t ∈ [1 s, 5 s], from one time constant on. Over the whole grid
#: the maximum of the BDF2 error sits in the first few steps (the start's error in the
#: parasitic mode, decaying like 3^{−n}), and its slope approaches 2 more slowly
#: (measured 1.95 at N = 800 → 1600, 1.99 at N = 12800 → 25600 for the RC step).
T_LATER = 1.0
SIZES = (200, 400, 800, 1600)
#: Theory: backward Euler is order 1, BDF2 with a one-step start order 2 for solutions smooth
#: on t ≥ 0 (the start's O(h²) local error enters once). Fitted over SIZES, where the
#: asymptotic regime holds to a few per cent (measured slopes are listed in each test).
ORDERS = {"GL": (0.9, 1.1), "FBDF2": (1.9, 2.1)}
KERNELS = [fp.GL(), fp.FBDF2()]


def _slope(errors):
    return float(np.polyfit(np.log(SIZES), np.log(errors), 1)[0]) * -1.0


def _rc_step():
    b = fp.CircuitBuilder("RC step")
    b.vsource("V1", "in", "0", 1.0)  # from rest: a unit step at t = 0+
    b.resistor("R1", "in", "out", 1.0)
    b.capacitor("C1", "out", "0", 1.0)
    return b.build(), "out", lambda t: 1.0 - np.exp(-t)


def _rlc_step():
    # Series R = 1 Ω, L = 1 H, C = 1 F: ω0 = 1, ζ = R/2·√(C/L) = 1/2, ωd = √(1 − ζ²).
    b = fp.CircuitBuilder("series RLC step")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "a", 1.0)
    b.inductor("L1", "a", "out", 1.0)
    b.capacitor("C1", "out", "0", 1.0)
    wd = np.sqrt(0.75)

    def exact(t):
        return 1.0 - np.exp(-0.5 * t) * (np.cos(wd * t) + 0.5 / wd * np.sin(wd * t))

    return b.build(), "out", exact


OMEGA = 2.0


def _driven_response(t, tau):
    """w(t) with τ w' = sin(ωt) − w, w(0) = 0."""
    wt = OMEGA * tau
    return (wt * np.exp(-t / tau) + np.sin(OMEGA * t) - wt * np.cos(OMEGA * t)) / (1 + wt**2)


def _rc_from_dc():
    # V = 1 + sin(ωt): the DC operating point charges C to 1 V, then v_C = 1 + w(t), τ = RC.
    b = fp.CircuitBuilder("RC from DC")
    b.vsource("V1", "in", "0", fp.Sin(1.0, 1.0, OMEGA / (2 * np.pi)))
    b.resistor("R1", "in", "out", 1.0)
    b.capacitor("C1", "out", "0", 0.5)
    return b.build(), "out", lambda t: 1.0 + _driven_response(t, 0.5)


def _rl_from_dc():
    # V = 1 + sin(ωt) through R into L: the DC operating point has i_L = 1/R = 1 A and
    # v_L = 0; then R i = 1 + w(t) with τ = L/R, and v_L = V − R i = sin(ωt) − w(t).
    b = fp.CircuitBuilder("RL from DC")
    b.vsource("V1", "in", "0", fp.Sin(1.0, 1.0, OMEGA / (2 * np.pi)))
    b.resistor("R1", "in", "out", 1.0)
    b.inductor("L1", "out", "0", 0.5)
    return b.build(), "out", lambda t: np.sin(OMEGA * t) - _driven_response(t, 0.5)


def _errors(case, kernel, uic):
    circuit, node, exact = case()
    errors = []
    for steps in SIZES:
        traj = fp.simulate(
            circuit, dt=T_END / steps, steps=steps, kernel=kernel, uic=uic, substeps=1
        )
        ts = np.asarray(traj.ts)
        later = ts >= T_LATER
        errors.append(float(np.max(np.abs(np.asarray(traj.node(node)) - exact(ts))[later])))
    return errors


@pytest.mark.parametrize("kernel", KERNELS, ids=["GL", "FBDF2"])
@pytest.mark.parametrize("case", [_rc_step, _rlc_step], ids=["RC", "RLC"])
def test_order_of_step_response_from_rest(case, kernel):
    errors = _errors(case, kernel, uic=True)
    low, high = ORDERS[type(kernel).__name__]
    assert low <= _slope(errors) <= high, errors


@pytest.mark.parametrize("kernel", KERNELS, ids=["GL", "FBDF2"])
@pytest.mark.parametrize("case", [_rc_from_dc, _rl_from_dc], ids=["RC", "RL"])
def test_order_from_dc_operating_point(case, kernel):
    errors = _errors(case, kernel, uic=False)
    low, high = ORDERS[type(kernel).__name__]
    assert low <= _slope(errors) <= high, errors


def test_rc_steps_are_backward_euler_then_bdf2():
    # RC step, R = C = 1: (Σ_k w_k v_{n−k})/h = 1 − v_n with w = [1, −1] at n = 1 and
    # [3/2, −2, 1/2] from n = 2 on, solved for v_n by hand.
    steps, h = 30, 0.1
    circuit, node, _ = _rc_step()
    traj = fp.simulate(circuit, dt=h, steps=steps, kernel=fp.FBDF2(), uic=True, substeps=1)
    v = np.zeros(steps + 1)
    v[1] = (v[0] + h) / (1 + h)
    for n in range(2, steps + 1):
        v[n] = (h + 2 * v[n - 1] - 0.5 * v[n - 2]) / (1.5 + h)
    np.testing.assert_allclose(np.asarray(traj.node(node)), v, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kernel", KERNELS, ids=["GL", "FBDF2"])
def test_integer_weights_end_with_the_order_one_weights(kernel):
    rows = kernel.integer_weights()
    last = rows[-1]
    w = np.asarray(kernel.weights(jnp.asarray(1.0), len(last) + 3))
    np.testing.assert_allclose(w, list(last) + [0.0] * 4, rtol=0, atol=1e-15)
    assert rows[0] == (1.0, -1.0)  # every start is one backward-Euler step


def test_kernel_without_integer_weights_is_rejected_by_name():
    class Other(fp.AbstractKernel):
        def weights(self, order, steps):
            return fp.GL().weights(order, steps)

    circuit, _, _ = _rc_step()
    with pytest.raises(NotImplementedError, match="Other does not define integer_weights"):
        fp.simulate(circuit, dt=0.1, steps=5, kernel=Other(), uic=True, substeps=1)


@pytest.mark.parametrize("kernel", KERNELS, ids=["GL", "FBDF2"])
def test_capacitor_nudge_norton_form_matches_a_capacitor_to_the_target(kernel):
    # EP's capacitor nudge in Norton form (capacitor S to ground plus S·dT/dt injected) is the
    # same step map as a capacitor S from the output to a source holding T, for either kernel.
    steps, h, s = 60, 0.05, 0.3
    ts = np.arange(steps + 1) * h
    target = np.sin(2.0 * ts) + 0.5
    target[0] = 0.0  # the run starts from rest
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 0.4))
    b.resistor("R1", "in", "out", 1.0)
    b.capacitor("C1", "out", "0", 0.5)
    base = b.build()
    norton = _with_targets(base, ("out",), jnp.asarray(target)[None], h, "capacitor", s, kernel)
    b.vsource("VT", "t", "0", 0.0)
    b.capacitor("CS", "out", "t", s)
    explicit = b.build()
    kw = dict(dt=h, steps=steps, kernel=kernel, uic=True)
    v_norton = fp.simulate(norton, **kw, substeps=1).node("out")
    v_explicit = fp.simulate(explicit, inputs={"VT": jnp.asarray(target)}, **kw, substeps=1).node(
        "out"
    )
    np.testing.assert_allclose(np.asarray(v_norton), np.asarray(v_explicit), rtol=0, atol=1e-13)
