"""`SaveAt` and `NewtonOptions`: what each option stores, the shapes, and clear errors for
bad values and for the keywords they replaced (float64)."""

import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp

DT, STEPS = 1e-3, 6
G, C, I = 0.5, 1e-3, 1e-3


def _circuit():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "a", 1.0 / G)
    b.capacitor("C1", "a", "0", C)
    b.isource("I1", "0", "a", I)
    return b.build()


def _run(**kw):
    return fp.simulate(_circuit(), dt=DT, steps=STEPS, uic=True, **kw, substeps=1)


def test_default_saves_states_only():
    traj = _run()
    assert traj.ts.shape == (STEPS + 1,)
    assert traj.v.shape == (STEPS + 1, 2)
    assert traj.i_vsrc.shape == (STEPS + 1, 1)
    assert traj.newton_iterations.shape == (STEPS + 1,)
    assert traj.i_branch is None and traj.i_isrc is None and traj.g_branch is None
    assert traj == _run(saveat=fp.SaveAt())


def test_currents_are_the_branch_laws_and_satisfy_kcl():
    traj = _run(saveat=fp.SaveAt(currents=True))
    assert traj.branch_names == ("R1", "C1")
    assert traj.i_branch.shape == (STEPS + 1, 2)
    assert traj.i_isrc.shape == (STEPS + 1, 1)
    assert traj.g_branch is None
    v_in, v_a = np.asarray(traj.node("in")), np.asarray(traj.node("a"))
    i_r, i_c = np.asarray(traj.i_branch).T
    # Ohm's law in the resistor; in the capacitor the default method, the trapezoidal rule
    # after one backward-Euler step (exact identities, so round-off only).
    np.testing.assert_allclose(i_r[1:], G * (v_in - v_a)[1:], rtol=1e-12)
    np.testing.assert_allclose(i_c[1], C / DT * (v_a[1] - v_a[0]), rtol=1e-12)
    np.testing.assert_allclose(i_c[2:], 2 * C / DT * np.diff(v_a)[1:] - i_c[1:-1], rtol=1e-9)
    # KCL at node a: what the resistor and the source bring in, the capacitor takes.
    np.testing.assert_allclose(i_r[1:] + np.asarray(traj.i_isrc)[1:, 0], i_c[1:], rtol=1e-9)
    np.testing.assert_array_equal(traj.v, _run().v)


def test_conductances_are_the_incremental_conductances():
    traj = _run(saveat=fp.SaveAt(conductances=True))
    assert traj.g_branch.shape == (STEPS + 1, 2)
    assert traj.i_branch is None
    g = np.asarray(traj.g_branch)
    np.testing.assert_array_equal(g[0], 0.0)
    # g = ∂i/∂v: the conductance of R1; for C1 a_0 C/dt under the default trapezoidal rule,
    # C/dt at its backward-Euler first step and 2C/dt after it.
    np.testing.assert_allclose(g[1:, 0], G, rtol=1e-15)
    np.testing.assert_allclose(g[1, 1], C / DT, rtol=1e-12)
    np.testing.assert_allclose(g[2:, 1], 2 * C / DT, rtol=1e-12)
    euler = _run(saveat=fp.SaveAt(conductances=True), method="euler")
    np.testing.assert_allclose(np.asarray(euler.g_branch)[1:, 1], C / DT, rtol=1e-12)


def test_states_false_keeps_only_the_start():
    full = _run()
    lean = _run(saveat=fp.SaveAt(states=False, currents=True))
    assert lean.v.shape == (1, 2) and lean.i_vsrc.shape == (1, 1)
    assert lean.ts.shape == (STEPS + 1,)
    np.testing.assert_array_equal(lean.v[0], full.v[0])
    assert lean.newton_iterations.shape == (1,)
    assert int(lean.newton_iterations[0]) == int(jnp.max(full.newton_iterations))
    # The other outputs are still per step.
    assert lean.i_branch.shape == (STEPS + 1, 2)


def test_newton_options_are_resolved_and_recorded():
    traj = _run()
    assert traj.newton == fp.NewtonOptions(max_iter=50, rtol=1e-10, atol=1e-13)
    custom = _run(newton=fp.NewtonOptions(max_iter=7, rtol=1e-6, atol=1e-9))
    assert custom.newton == fp.NewtonOptions(max_iter=7, rtol=1e-6, atol=1e-9)
    # A linear circuit is solved in one Newton update whatever the tolerances.
    np.testing.assert_allclose(custom.v, traj.v, rtol=1e-12)


def test_newton_max_iter_limits_the_iterations():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.PWL([0, 1e-6, 1], [0, 50, 50]))
    b.resistor("R1", "in", "a", 1e-3)
    b.diode("D1", "a", "0", is_=1e-14, n=1.0)
    traj = fp.simulate(
        b.build(), dt=1e-6, steps=3, newton=fp.NewtonOptions(max_iter=3), throw=False, substeps=1
    )
    assert traj.result == fp.RESULTS.newton_failed
    assert int(jnp.max(traj.newton_iterations)) == 3


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: fp.SaveAt(states=1), TypeError, r"SaveAt\(states=1\): states must be True"),
        (lambda: fp.SaveAt(currents="yes"), TypeError, "currents must be True or False"),
        (lambda: fp.SaveAt(conductances=None), TypeError, "conductances must be True"),
        (lambda: fp.NewtonOptions(max_iter=0), ValueError, "max_iter must be at least 1"),
        (lambda: fp.NewtonOptions(max_iter=2.5), TypeError, "max_iter must be an integer"),
        (lambda: fp.NewtonOptions(max_iter=True), TypeError, "max_iter must be an integer"),
        (lambda: fp.NewtonOptions(rtol=-1e-3), ValueError, "rtol must be a finite number"),
        (lambda: fp.NewtonOptions(atol=float("nan")), ValueError, "atol must be a finite"),
        (lambda: fp.NewtonOptions(rtol="1e-3"), TypeError, "rtol must be None"),
    ],
)
def test_bad_option_values_are_rejected(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(saveat=True), r"saveat=True must be a SaveAt"),
        (dict(saveat=dict(states=True)), "must be a SaveAt"),
        (dict(newton=50), r"newton=50 must be a NewtonOptions"),
        (dict(save_states=False), r"no longer takes save_states=; pass saveat=SaveAt\(states"),
        (dict(save_currents=True), r"pass saveat=SaveAt\(currents=\.\.\.\)"),
        (dict(save_conductances=True), r"pass saveat=SaveAt\(conductances=\.\.\.\)"),
        (dict(max_newton=5), r"no longer takes max_newton=; pass newton=NewtonOptions\(max_"),
        (dict(save_everything=True), "unexpected keyword argument 'save_everything'"),
    ],
)
def test_bad_simulate_keywords_name_the_replacement(kw, match):
    with pytest.raises(TypeError, match=match):
        _run(**kw)
