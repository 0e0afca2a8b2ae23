"""Transient analysis against closed forms, exact identities and finite differences (float64)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import every_element_circuit, fractional_rc, mittag_leffler
from scipy.special import erfcx

import fracprop as fp
from fracprop._transient import start

# ------------------------------------------------------------------ fractional RC step response
# v_C(t) = V (1 − E_α(−t^α / (R C_α))) (docs/design.md §4); with R = C_α = 1 the time
# constant is 1 s.
T_END = 5.0  # five time constants


def _ml_reference(alpha, ts):
    if alpha == 0.5:
        # E_{1/2}(−x) = erfcx(x) (docs/design.md §4)
        return 1.0 - erfcx(np.sqrt(ts))
    return np.array([1.0 - mittag_leffler(alpha, -(t**alpha)) for t in ts])


# These tests are about the Grünwald–Letnikov scheme of Kendall (2021) on a fixed grid; the
# default scheme (FBDF2 with starting weights) is tested in test_starting.py.
GL_SCHEME = dict(kernel=fp.GL(), starting=False, substeps=1)


def _rc_errors(alpha, steps):
    traj = fp.simulate(fractional_rc(alpha), dt=T_END / steps, steps=steps, **GL_SCHEME)
    ts = np.asarray(traj.ts)
    return ts, np.asarray(traj.node("out")), traj


@pytest.mark.parametrize("alpha", [0.5, 0.7])
def test_fractional_rc_matches_mittag_leffler(alpha):
    # Compare at the fixed times t = 1.25, 2.5, 3.75, 5 (on every grid), independent of N.
    probe = np.array([1.25, 2.5, 3.75, 5.0])
    ref = _ml_reference(alpha, probe)
    errs = []
    sizes = [512, 1024, 2048, 4096]
    for steps in sizes:
        ts, v, _ = _rc_errors(alpha, steps)
        idx = np.round(probe / (T_END / steps)).astype(int)
        errs.append(np.abs(v[idx] - ref))
    errs = np.array(errs)  # (sizes, probes)
    final_error_4096 = errs[-1, -1]
    errs = errs.max(axis=1)
    # GL is first order away from t = 0 (docs/design.md §2): the fitted slope lies in [0.9, 1.1].
    slope = -np.polyfit(np.log(sizes), np.log(errs), 1)[0]
    assert 0.9 <= slope <= 1.1, (slope, errs)
    # At N = 4096 over five time constants, the error at the end of the run (t = 5τ, the
    # convention of docs/design.md §2's measurements) is below 1e-4·V. (The largest error over the
    # probes, at t = 1.25τ, is 1.2e-4·V for α = 0.7: the kernel is first order.)
    assert final_error_4096 <= 1e-4, final_error_4096


@pytest.mark.parametrize(
    "alpha",
    [
        0.5,
        pytest.param(
            0.7,
            marks=pytest.mark.xfail(
                strict=True,
                reason="the stricter reading of the 1e-4·V bound is not met: at N = 4096 the "
                "GL error at t = 1.25τ is 1.19e-4·V > 1e-4·V for α = 0.7 (first-order kernel)",
            ),
        ),
    ],
)
def test_fractional_rc_error_bound_from_one_time_constant_on(alpha):
    # The 1e-4·V bound at every probe t ∈ {1.25, 2.5, 3.75, 5}·τ, not only at the end.
    probe = np.array([1.25, 2.5, 3.75, 5.0])
    _, v, _ = _rc_errors(alpha, 4096)
    idx = np.round(probe / (T_END / 4096)).astype(int)
    assert np.max(np.abs(v[idx] - _ml_reference(alpha, probe))) <= 1e-4


def test_fractional_rc_initial_layer_is_order_alpha():
    # Near t = 0 the solution behaves like t^α, and the GL error at the first step is O(h^α):
    # this is the documented limit of a first-order kernel without starting weights.
    first = []
    for steps in (1024, 4096):
        ts, v, _ = _rc_errors(0.5, steps)
        first.append(abs(v[1] - _ml_reference(0.5, ts[1:2])[0]))
    slope = np.log(first[0] / first[1]) / np.log(4)
    assert 0.4 <= slope <= 0.6, slope


def test_rc_reaches_alpha_one_backward_euler():
    # α = 1: the CPE is a capacitor and GL is backward Euler: v_n = (v_{n-1} + h)/(1 + h).
    steps, h = 50, 0.1
    traj = fp.simulate(fractional_rc(1.0), dt=h, steps=steps, **GL_SCHEME)
    v = np.zeros(steps + 1)
    for n in range(1, steps + 1):
        v[n] = (v[n - 1] + h) / (1 + h)
    np.testing.assert_allclose(np.asarray(traj.node("out")), v, rtol=1e-13, atol=1e-15)


# ------------------------------------------------- memristor identities (docs/design.md §1)
def _memristor_or_resistor(kind, alpha=0.6):
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 3.0))
    b.resistor("R1", "in", "a", 1e3)
    if kind == "memristor":
        b.memristor("M1", "a", "0", g=2e-3, alpha=alpha)
    else:
        b.resistor("M1", "a", "0", g=2e-3)
    b.capacitor("C1", "a", "0", 1e-4)
    return b.build()


@pytest.mark.parametrize("alpha", [0.3, 0.6, 1.0])
def test_linear_memristor_is_a_resistor(alpha):
    # Without starting weights: with them the two corrected convolutions are inverses only on
    # the powers they are exact for, so the element is a resistor up to the scheme's error.
    kw = dict(dt=1e-3, steps=400, uic=True, starting=False)
    mem = fp.simulate(_memristor_or_resistor("memristor", alpha), **kw, substeps=1)
    res = fp.simulate(_memristor_or_resistor("resistor"), **kw, substeps=1)
    rel = jnp.max(jnp.abs(mem.v - res.v)) / jnp.max(jnp.abs(res.v))
    assert rel <= 1e-12


def test_memristor_alpha_one_is_nonlinear_resistor():
    # α = 1: i = g·s(v) exactly, a static nonlinear resistor.
    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", fp.Sin(0.0, 2.0, 1.0))
    b.memristor("M1", "a", "0", g=1e-3, alpha=1.0, law=fp.Sinh(0.5))
    traj = fp.simulate(b.build(), dt=1e-2, steps=100, substeps=1)
    v = np.asarray(traj.node("a"))
    expected_current = 1e-3 * 0.5 * np.sinh(v / 0.5)
    # SPICE sign: the source current flows into its + node, i.e. minus the load current.
    np.testing.assert_allclose(-np.asarray(traj.i_vsrc[:, 0]), expected_current, rtol=1e-12)


# ----------------------------------------------------------------------------- differentiability
def _loss(circuit, steps=120):
    # The orders α are among the differentiated parameters: no starting weights (they are
    # precomputed from concrete orders).
    traj = fp.simulate(circuit, dt=2e-4, steps=steps, substeps=1, starting=False)
    return jnp.sum(traj.v**2) * 2e-4


def test_grad_matches_finite_differences_every_element():
    """jax.grad against fourth-order central differences, for every parameter of every element.

    Compared in relative coordinates d_i = x_i ∂J/∂x_i (the response to a relative change of
    each parameter), with step h_i = 1e-3·|x_i|: the stencil's truncation error is O(h⁴) ≈ 1e-12
    relative and round-off ≈ eps·J/h ≈ 1e-13·J. The bound is 1e-6, relative to the
    gradient's norm (a per-parameter relative bound is meaningless for parameters whose
    sensitivity is 1e-4 of the largest one; their absolute error is still checked).
    """
    circuit = every_element_circuit()
    params, static = eqx.partition(circuit, eqx.is_inexact_array)
    grads = jax.grad(lambda p: _loss(eqx.combine(p, static)))(params)
    leaves, treedef = jax.tree.flatten(params)
    gleaves = jax.tree.leaves(grads)
    ad, fd = [], []
    for li, (leaf, gleaf) in enumerate(zip(leaves, gleaves)):
        for k in range(leaf.size):
            x0 = float(leaf.reshape(-1)[k])
            assert x0 != 0.0
            h = 1e-3 * abs(x0)

            def shifted(delta, li=li, k=k, leaf=leaf):
                new = list(leaves)
                new[li] = leaf.reshape(-1).at[k].add(delta).reshape(leaf.shape)
                return float(_loss(eqx.combine(jax.tree.unflatten(treedef, new), static)))

            d = (-shifted(2 * h) + 8 * shifted(h) - 8 * shifted(-h) + shifted(-2 * h)) / (12 * h)
            fd.append(x0 * d)
            ad.append(x0 * float(gleaf.reshape(-1)[k]))
    ad, fd = np.array(ad), np.array(fd)
    assert ad.size == 28  # every parameter of every element and source
    assert np.all(np.abs(fd) > 0)
    rel = np.linalg.norm(ad - fd) / np.linalg.norm(fd)
    assert rel <= 1e-6, rel
    assert np.all(np.abs(ad - fd) <= 1e-6 * np.linalg.norm(fd))


def test_jacfwd_equals_grad():
    circuit = every_element_circuit()
    g0 = circuit.get("R1", "g")

    def f(g):
        return _loss(circuit.set("R1", "g", g), steps=60)

    np.testing.assert_allclose(jax.jacfwd(f)(g0), jax.grad(f)(g0), rtol=1e-10)


def test_vmap_over_parameters_and_sources():
    circuit = _memristor_or_resistor("memristor")
    gs = jnp.array([1e-3, 2e-3, 5e-3])

    def run(g):
        return fp.simulate(circuit.set("M1", "g", g), dt=1e-3, steps=50, throw=False, substeps=1).v

    batched = jax.vmap(run)(gs)
    for k, g in enumerate(gs):
        np.testing.assert_allclose(batched[k], run(g), rtol=1e-12, atol=1e-15)

    steps = 50
    u = jnp.sin(jnp.linspace(0, 3, steps + 1))[None, :] * jnp.array([[1.0], [2.0]])

    def run_u(u):
        return fp.simulate(
            circuit, dt=1e-3, steps=steps, inputs={"V1": u}, throw=False, substeps=1
        ).v

    out = jax.vmap(run_u)(u)
    # Linear circuit: doubling the input doubles the response.
    np.testing.assert_allclose(out[1], 2 * out[0], rtol=1e-12, atol=1e-15)


def test_vmap_of_grad_equals_grad_of_each():
    circuit = _memristor_or_resistor("memristor")

    def loss(g):
        return jnp.sum(fp.simulate(circuit.set("R1", "g", g), dt=1e-3, steps=40, substeps=1).v ** 2)

    gs = jnp.array([5e-4, 1e-3])
    np.testing.assert_allclose(
        jax.vmap(jax.grad(loss))(gs), jnp.stack([jax.grad(loss)(g) for g in gs]), rtol=1e-12
    )


def test_float32_runs_close_to_float64(monkeypatch):
    circuit = every_element_circuit()
    t32 = fp.simulate(circuit, dt=2e-4, steps=100, dtype=jnp.float32, substeps=1)
    # How many exponents the starting weights correct depends on the working precision
    # (`fracprop._transient.start.starting_plan`): the float64 run corrects the float32 run's
    # exponents here, so that the two differ by round-off only.
    float32_bound = start.max_block_condition(np.float32)
    monkeypatch.setattr(start, "max_block_condition", lambda dtype: float32_bound)
    t64 = fp.simulate(circuit, dt=2e-4, steps=100, substeps=1)
    assert t32.v.dtype == jnp.float32
    swing = np.ptp(np.asarray(t64.v), axis=0)
    # f32 round-off accumulated over 100 implicit steps: relative to the swing, ~1e-5.
    assert np.all(np.max(np.abs(np.asarray(t32.v) - np.asarray(t64.v)), axis=0) <= 1e-3 * swing)


def test_jit_of_simulate_with_traced_dt():
    circuit = fractional_rc(0.5)

    @jax.jit
    def final(dt):
        return fp.simulate(circuit, dt=dt, steps=64, throw=False, substeps=1).node("out")[-1]

    assert np.isclose(
        final(0.01), fp.simulate(circuit, dt=0.01, steps=64, substeps=1).node("out")[-1]
    )


# ----------------------------------------------------------------------------- DC operating point
def test_dc_operating_point_of_divider_and_diode():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 5.0)
    b.resistor("R1", "in", "a", 1e3)
    b.diode("D1", "a", "0", is_=1e-14, n=1.0)
    b.capacitor("C1", "a", "0", 1e-6)
    traj = fp.simulate(b.build(), dt=1e-5, steps=5, substeps=1)
    va = float(traj.node("a")[0])
    i = (5.0 - va) / 1e3
    vt = fp._circuit.elements.VT_27C
    assert np.isclose(i, 1e-14 * np.expm1(va / vt) + 1e-12 * va, rtol=1e-9)
    # Steady state: nothing moves afterwards.
    np.testing.assert_allclose(np.asarray(traj.node("a")), va, rtol=1e-12)


def test_inductor_initial_current_from_operating_point():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 2.0)
    b.resistor("R1", "in", "a", 100.0)
    b.inductor("L1", "a", "0", 1e-3, law=fp.Sinh(1e-4))
    traj = fp.simulate(b.build(), dt=1e-6, steps=10, saveat=fp.SaveAt(currents=True), substeps=1)
    i_l = np.asarray(traj.i_branch)[:, traj.branch_names.index("L1")]
    np.testing.assert_allclose(i_l, 0.02, rtol=1e-10)


def test_uic_starts_from_rest():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0)
    b.capacitor("C1", "out", "0", 1.0)
    c = b.build()
    assert float(fp.simulate(c, dt=0.1, steps=3, substeps=1).node("out")[0]) == pytest.approx(1.0)
    rest = fp.simulate(c, dt=0.1, steps=3, uic=True, substeps=1)
    assert float(rest.node("out")[0]) == 0.0
    assert float(rest.node("out")[1]) == pytest.approx(0.1 / 1.1)


# ----------------------------------------------------------------------------------- statuses
def test_newton_failure_reports_time_node_and_advice():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.PWL([0, 1e-6, 1], [0, 50, 50]))
    b.resistor("R1", "in", "a", 1e-3)
    b.diode("D1", "a", "0", is_=1e-14, n=1.0)
    c = b.build()
    with pytest.raises(fp.SimulationError, match=r"did not converge at t=.*node 'a'.*max_iter"):
        fp.simulate(c, dt=1e-6, steps=3, newton=fp.NewtonOptions(max_iter=3), substeps=1)
    traj = fp.simulate(
        c, dt=1e-6, steps=3, newton=fp.NewtonOptions(max_iter=3), throw=False, substeps=1
    )
    assert traj.result == fp.RESULTS.newton_failed
    assert int(traj.fail_step) == 1


def test_nonfinite_state_is_reported():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.PWL([0, 1e-3, 1], [0, 0, jnp.inf]))
    b.resistor("R1", "in", "a", 1.0)
    b.capacitor("C1", "a", "0", 1.0)
    with pytest.raises(fp.SimulationError, match=r"non-finite at t=.*step"):
        fp.simulate(b.build(), dt=1e-3, steps=5, substeps=1)


def test_traced_alpha_outside_range_is_caught():
    circuit = fractional_rc(0.5)
    with pytest.raises(Exception, match=r"alpha of the CPEs \(P1\) must lie in \(0, 1\]"):
        jax.block_until_ready(
            fp.simulate(circuit.set("P1", "alpha", 1.5), dt=0.1, steps=3, throw=False, substeps=1).v
        )


def test_bad_arguments():
    circuit = fractional_rc(0.5)
    with pytest.raises(ValueError, match="steps=0"):
        fp.simulate(circuit, dt=0.1, steps=0, substeps=1)
    with pytest.raises(ValueError, match="dt=-0.1"):
        fp.simulate(circuit, dt=-0.1, steps=3, substeps=1)
    with pytest.raises(ValueError, match=r"inputs\['V1'\] has shape \(3,\)"):
        fp.simulate(circuit, dt=0.1, steps=3, inputs={"V1": jnp.zeros(3)}, substeps=1)


def test_mna_solve_eliminates_grounded_sources_exactly():
    # `_MNA.solve` eliminates voltage sources from a node to ground (either orientation) by
    # block elimination and keeps the others (floating, or sharing a node with another
    # source) in the LU. Its solution must equal the full dense solve of the same Jacobian.
    from fracprop._transient.mna import _transient_mna

    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", 1.0)  # grounded, + at the node
    b.vsource("V2", "0", "b", 2.0)  # grounded, − at the node
    b.vsource("V3", "c", "d", 0.5)  # floating: stays in the LU
    b.vsource("V4", "e", "0", 1.0)  # grounded, but node e also has V5: stays
    b.vsource("V5", "e", "f", 0.3)
    for k, (x, y) in enumerate(
        [("a", "b"), ("b", "c"), ("c", "0"), ("d", "0"), ("d", "a"), ("f", "0"), ("f", "b")]
    ):
        b.resistor(f"R{k}", x, y, 1.0 + k)
    b.capacitor("C1", "c", "0", 1e-3)
    circuit = b.build()
    mna = _transient_mna(circuit)
    k, p, _ = mna.grounded_sources()
    assert sorted(circuit.vsources.names[i] for i in k) == ["V1", "V2"]
    g = jnp.asarray(np.random.default_rng(0).uniform(0.1, 2.0, len(mna.a)))
    f = jnp.asarray(np.random.default_rng(1).normal(size=mna.size))
    full = jnp.linalg.solve(mna.jacobian(g, g.dtype), f)
    np.testing.assert_allclose(mna.solve(g, f), full, rtol=1e-12, atol=1e-13)
