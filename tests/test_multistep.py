"""Integer-order capacitors and inductors step with the multistep method ``method=``
(float64), independent of the fractional kernel.

``"euler"`` is backward Euler (order 1), ``"trap"`` the trapezoidal rule and ``"gear"`` BDF2,
each started by one backward-Euler step (order 2). The orders are fitted against closed-form
solutions of RC, RL and series RLC circuits, from rest (a source step at ``t = 0+``) and from
a nonzero DC operating point.
"""

import functools
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp
from fracprop._circuit.elements.multistep import multistep_rate
from fracprop._learning.estimators import _with_targets

# These tests are about the schemes on a given grid: no time-error control.
simulate = functools.partial(fp.simulate, substeps=1)

T_END = 5.0
#: The errors are maxima over t ∈ [1 s, 5 s], from one time constant on. Over the whole grid
#: the maximum of the BDF2 error sits in the first few steps (the start's error in the
#: parasitic mode, decaying like 3^{−n}), and its slope approaches 2 more slowly
#: (measured 1.95 at N = 800 → 1600, 1.99 at N = 12800 → 25600 for the RC step);
#: `test_order_over_the_whole_grid` fits it there.
T_LATER = 1.0
SIZES = (200, 400, 800, 1600)
#: Theory: backward Euler is order 1; the trapezoidal rule and BDF2 with a one-step start are
#: order 2 for solutions smooth on t ≥ 0 (the start's O(h²) local error enters once). Fitted
#: over SIZES, where the asymptotic regime holds to a few per cent (measured slopes, t ≥ 1 s:
#: euler 0.993–0.996, trap 1.994–2.002, gear 2.000–2.007).
ORDERS = {"euler": (0.9, 1.1), "trap": (1.9, 2.1), "gear": (1.9, 2.1)}
METHODS = ["euler", "trap", "gear"]


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


def _errors(case, method, uic, t_from=T_LATER):
    circuit, node, exact = case()
    errors = []
    for steps in SIZES:
        traj = simulate(circuit, dt=T_END / steps, steps=steps, method=method, uic=uic)
        ts = np.asarray(traj.ts)
        later = ts >= t_from
        errors.append(float(np.max(np.abs(np.asarray(traj.node(node)) - exact(ts))[later])))
    return errors


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [_rc_step, _rlc_step], ids=["RC", "RLC"])
def test_order_of_step_response_from_rest(case, method):
    errors = _errors(case, method, uic=True)
    low, high = ORDERS[method]
    assert low <= _slope(errors) <= high, errors


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [_rc_from_dc, _rl_from_dc], ids=["RC", "RL"])
def test_order_from_dc_operating_point(case, method):
    errors = _errors(case, method, uic=False)
    low, high = ORDERS[method]
    assert low <= _slope(errors) <= high, errors


#: Over the whole grid, from the first step on. The maximum error of the second-order methods
#: then includes the first steps, where the start's local error O(h²) has not yet decayed
#: (for gear through its parasitic mode ~3^{−n}), so the fitted slope over SIZES sits a
#: little below 2. Measured: euler 0.993–0.996; trap 1.983 (RC step), 1.982 (RLC step),
#: 1.966 (RC and RL driven by 1 + sin from DC); gear 1.948, 1.946, 1.910, 1.910. A first
#: step that were not backward Euler (the trapezoidal rule averaging in the current before
#: a jump at t = 0) would give slope 1.
WHOLE_GRID_ORDERS = {"euler": (0.9, 1.1), "trap": (1.9, 2.1), "gear": (1.85, 2.1)}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "case, uic",
    [(_rc_step, True), (_rlc_step, True), (_rc_from_dc, False), (_rl_from_dc, False)],
    ids=["RC-step", "RLC-step", "RC-sin-from-DC", "RL-sin-from-DC"],
)
def test_order_over_the_whole_grid(case, uic, method):
    errors = _errors(case, method, uic=uic, t_from=0.0)
    low, high = WHOLE_GRID_ORDERS[method]
    assert low <= _slope(errors) <= high, errors


def test_rc_steps_are_backward_euler_then_bdf2():
    # RC step, R = C = 1: (Σ_k w_k v_{n−k})/h = 1 − v_n with w = [1, −1] at n = 1 and
    # [3/2, −2, 1/2] from n = 2 on, solved for v_n by hand.
    steps, h = 30, 0.1
    circuit, node, _ = _rc_step()
    traj = simulate(circuit, dt=h, steps=steps, method="gear", uic=True)
    v = np.zeros(steps + 1)
    v[1] = (v[0] + h) / (1 + h)
    for n in range(2, steps + 1):
        v[n] = (h + 2 * v[n - 1] - 0.5 * v[n - 2]) / (1.5 + h)
    np.testing.assert_allclose(np.asarray(traj.node(node)), v, rtol=1e-13, atol=1e-15)


def test_rc_steps_are_backward_euler_then_trapezoidal():
    # RC step, R = C = 1, i_n = 1 − v_n: v_1 = v_0 + h i_1 (backward Euler), then
    # v_n = v_{n−1} + (h/2)(i_n + i_{n−1}), solved for v_n by hand.
    steps, h = 30, 0.1
    circuit, node, _ = _rc_step()
    traj = simulate(circuit, dt=h, steps=steps, method="trap", uic=True)
    v = np.zeros(steps + 1)
    v[1] = (v[0] + h) / (1 + h)
    for n in range(2, steps + 1):
        v[n] = (v[n - 1] + 0.5 * h * (2.0 - v[n - 1])) / (1 + 0.5 * h)
    np.testing.assert_allclose(np.asarray(traj.node(node)), v, rtol=1e-13, atol=1e-15)


def test_rl_steps_are_backward_euler_then_trapezoidal():
    # RL from the DC operating point (i_0 = 1 A, v_L = 0): R i_n = V(t_n) − v_n with
    # Φ = L i, Φ_1 = Φ_0 + h v_1, then Φ_n = Φ_{n−1} + (h/2)(v_n + v_{n−1}), by hand.
    steps, h, r, l = 30, 0.1, 1.0, 0.5
    circuit, node, _ = _rl_from_dc()
    traj = simulate(circuit, dt=h, steps=steps, method="trap")
    src = 1.0 + np.sin(OMEGA * h * np.arange(steps + 1))
    v, i = np.zeros(steps + 1), np.zeros(steps + 1)
    i[0] = 1.0
    # l i_n = l i_{n−1} + (h/2)(v_n + v_{n−1}) with v_n = src_n − r i_n: linear in i_n.
    v[1] = (src[1] - r * i[0]) / (1 + r * h / l)
    i[1] = (src[1] - v[1]) / r
    for n in range(2, steps + 1):
        rhs = l * i[n - 1] + 0.5 * h * (src[n] + v[n - 1])
        i[n] = rhs / (l + 0.5 * h * r)
        v[n] = src[n] - r * i[n]
    np.testing.assert_allclose(np.asarray(traj.node(node)), v, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "method, kernel", [("euler", fp.GL()), ("gear", fp.FBDF2())], ids=["euler-GL", "gear-FBDF2"]
)
def test_method_ends_with_the_order_one_kernel_weights(method, kernel):
    # Backward Euler and BDF2 are the convolution quadratures GL and FBDF2 of order 1: the
    # method's last a row is the kernel's weights for a = 1 (a finite list).
    rows = fp.resolve_method(method).a_rows
    last = rows[-1]
    w = np.asarray(kernel.weights(jnp.asarray(1.0), len(last) + 3))
    np.testing.assert_allclose(w, list(last) + [0.0] * 4, rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_starts_with_one_backward_euler_step(method):
    m = fp.resolve_method(method)
    assert m.a_rows[0] == (1.0, -1.0) and m.b_rows[0] == (1.0,)
    assert m.order == (1 if method == "euler" else 2)


def test_kernel_does_not_change_integer_order_elements():
    # The kernel serves fractional elements only: an RLC circuit runs the same under GL, FBDF2
    # and a kernel that defines nothing but its weights (bitwise: the same operations).
    class Other(fp.AbstractKernel):
        def weights(self, order, steps):
            return fp.GL().weights(order, steps)

    circuit, node, _ = _rlc_step()
    runs = [
        np.asarray(simulate(circuit, dt=0.1, steps=20, kernel=k, uic=True).node(node))
        for k in (fp.GL(), fp.FBDF2(), Other())
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


@pytest.mark.parametrize("method", METHODS)
def test_multistep_rate_is_the_current_of_a_unit_capacitor(method):
    # A 1 F capacitor driven by a voltage source holding x draws the current multistep_rate(x).
    steps, h = 40, 0.05
    ts = np.arange(steps + 1) * h
    x = np.sin(3.0 * ts) + ts**2
    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", 0.0)
    b.capacitor("C1", "a", "0", 1.0)
    traj = simulate(
        b.build(),
        dt=h,
        steps=steps,
        method=method,
        uic=True,
        inputs={"V1": jnp.asarray(x)},
        saveat=fp.SaveAt(currents=True),
    )
    rate = multistep_rate(jnp.asarray(x), fp.resolve_method(method), h)
    np.testing.assert_allclose(
        np.asarray(traj.i_branch[1:, 0]), np.asarray(rate[1:]), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("method", METHODS)
def test_capacitor_nudge_norton_form_matches_a_capacitor_to_the_target(method):
    # EP's capacitor nudge in Norton form (capacitor S to ground plus S·dT/dt injected) is the
    # same step map as a capacitor S from the output to a source holding T, for every method.
    steps, h, s = 60, 0.05, 0.3
    ts = np.arange(steps + 1) * h
    target = np.sin(2.0 * ts) + 0.5
    target[0] = 0.0  # the run starts from rest
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 0.4))
    b.resistor("R1", "in", "out", 1.0)
    b.capacitor("C1", "out", "0", 0.5)
    base = b.build()
    norton = _with_targets(
        base, ("out",), jnp.asarray(target)[None], h, "capacitor", s, fp.resolve_method(method)
    )
    b.vsource("VT", "t", "0", 0.0)
    b.capacitor("CS", "out", "t", s)
    explicit = b.build()
    kw = dict(dt=h, steps=steps, method=method, uic=True)
    v_norton = simulate(norton, **kw).node("out")
    v_explicit = simulate(explicit, inputs={"VT": jnp.asarray(target)}, **kw).node("out")
    np.testing.assert_allclose(np.asarray(v_norton), np.asarray(v_explicit), rtol=0, atol=1e-13)


# -------------------------------------------------------------------------- method selection
@pytest.mark.parametrize(
    "name, cls",
    [
        ("trap", fp.Trapezoidal),
        ("TRAP", fp.Trapezoidal),
        ("trapezoidal", fp.Trapezoidal),
        ("Gear", fp.Gear2),
        ("bdf2", fp.Gear2),
        ("euler", fp.BackwardEuler),
        ("be", fp.BackwardEuler),
    ],
)
def test_resolve_method_by_name(name, cls):
    method = fp.resolve_method(name)
    assert type(method) is cls
    assert fp.resolve_method(method) is method
    assert fp.resolve_method(method.name) == method


def test_unknown_method_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"method='rk4' .* 'trap', 'gear', 'euler'"):
        fp.resolve_method("rk4")
    circuit, _, _ = _rc_step()
    with pytest.raises(ValueError, match="method='rk4'"):
        simulate(circuit, dt=0.1, steps=5, method="rk4")
    with pytest.raises(TypeError, match="must be a name"):
        fp.resolve_method(2)


def test_learning_problem_method_defaults_to_backward_euler_and_is_checked():
    circuit, _, _ = _rc_step()
    problem = fp.LearningProblem(circuit, inputs="V1", outputs="out", dt=0.1, steps=5)
    assert problem.method == fp.BackwardEuler()
    assert problem.replace(method="trap").method == fp.Trapezoidal()
    with pytest.raises(fp.LearningError, match="method='rk4'"):
        fp.LearningProblem(circuit, inputs="V1", outputs="out", dt=0.1, steps=5, method="rk4")


def test_a_method_must_start_from_t_zero_with_unit_b0():
    class Reaching(fp.AbstractMultistep):
        name: ClassVar[str] = "reaching"
        order: ClassVar[int] = 2
        error_constant: ClassVar[float] = 2 / 9
        a_rows: ClassVar[tuple] = ((1.5, -2.0, 0.5),)  # BDF2 at n = 1 would need q_{−1}
        b_rows: ClassVar[tuple] = ((1.0,),)

    with pytest.raises(ValueError, match=r"row 0 \(step n = 1\) reaches before t = 0"):
        Reaching()

    class Scaled(fp.AbstractMultistep):
        name: ClassVar[str] = "scaled"
        order: ClassVar[int] = 1
        error_constant: ClassVar[float] = 1 / 2
        a_rows: ClassVar[tuple] = ((2.0, -2.0),)
        b_rows: ClassVar[tuple] = ((2.0,),)

    with pytest.raises(ValueError, match="b_0 = 1"):
        Scaled()
