"""The status of a run: the `RESULTS` enumeration, and ``throw=True`` eagerly, under `jax.jit`
and under `jax.vmap` (float64)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp

DT, STEPS = 1e-3, 4


def _rc(g: float = 0.5):
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "a", 1.0 / g)
    b.capacitor("C1", "a", "0", 1e-3)
    return b.build()


def _diode():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.PWL([0, 1e-6, 1], [0, 50, 50]))
    b.resistor("R1", "in", "a", 1e-3)
    b.diode("D1", "a", "0", is_=1e-14, n=1.0)
    return b.build()


def _nan_rc():
    return _rc().set("R1", "g", jnp.nan)


def _v(circuit, **kw):
    return fp.simulate(circuit, dt=DT, steps=STEPS, uic=True, **kw, substeps=1).v


GS = jnp.array([0.5, jnp.nan, 2.0])


def test_results_is_an_enumeration_with_readable_items(capsys):
    assert issubclass(fp.RESULTS, eqx.Enumeration)
    traj = fp.simulate(_rc(), dt=DT, steps=STEPS, substeps=1)
    assert traj.result == fp.RESULTS.successful
    print(traj.result)
    printed = capsys.readouterr().out
    assert "RESULTS<successful>" in printed
    failed = fp.simulate(_nan_rc(), dt=DT, steps=STEPS, uic=True, throw=False, substeps=1)
    print(failed.result)
    assert "non-finite" in capsys.readouterr().out


def test_eager_throw_raises_simulation_error_with_time_step_and_node():
    with pytest.raises(
        fp.SimulationError, match=r"non-finite at t=0\.001 s \(step 1\) on node 'a'; reduce dt"
    ):
        _v(_nan_rc())


def test_jit_throw_raises_naming_the_nonfinite_state():
    run = jax.jit(_v)
    with pytest.raises(
        jax.errors.JaxRuntimeError,
        match=r"non-finite at t=0\.001 s \(step 1\) on node 'a'; reduce dt, or check",
    ):
        run(_nan_rc()).block_until_ready()
    # A good circuit through the same compiled function: no error, the eager values.
    np.testing.assert_array_equal(run(_rc()), _v(_rc()))


def test_jit_with_traced_dt_names_the_step():
    run = jax.jit(lambda c, dt: fp.simulate(c, dt=dt, steps=STEPS, uic=True, substeps=1).v)
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"non-finite at step 1 on node 'a'"):
        run(_nan_rc(), DT).block_until_ready()


def test_nonfinite_operating_point_is_reported_at_step_0():
    # From the DC operating point (no uic): the NaN conductance makes it non-finite.
    with pytest.raises(fp.SimulationError, match=r"non-finite at t=0 s \(step 0\)"):
        fp.simulate(_nan_rc(), dt=DT, steps=STEPS, substeps=1)
    with pytest.raises(jax.errors.JaxRuntimeError, match=r"non-finite .*step 0"):
        jax.jit(lambda c: fp.simulate(c, dt=DT, steps=STEPS, substeps=1).v)(
            _nan_rc()
        ).block_until_ready()


def test_jit_throw_raises_on_newton_failure():
    run = jax.jit(
        lambda c: (
            fp.simulate(c, dt=1e-6, steps=3, newton=fp.NewtonOptions(max_iter=3), substeps=1).v
        )
    )
    with pytest.raises(
        jax.errors.JaxRuntimeError,
        match=r"Newton's method did not converge at t=1e-06 s \(step 1\) on node 'a'.*"
        r"max_iter=\.\.\.\) \(now 3\)",
    ):
        run(_diode()).block_until_ready()


def test_vmap_throw_raises_when_one_lane_fails():
    run = jax.vmap(lambda g: _v(_rc().set("R1", "g", g)))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"non-finite at t=0\.001 s \(step 1\)"):
        run(GS)
    with pytest.raises(jax.errors.JaxRuntimeError, match="non-finite"):
        jax.jit(run)(GS).block_until_ready()


@pytest.mark.parametrize("jit", [False, True])
def test_vmap_without_throw_reports_each_lane(jit):
    def run(g):
        return fp.simulate(
            _rc().set("R1", "g", g), dt=DT, steps=STEPS, uic=True, throw=False, substeps=1
        )

    batched = jax.vmap(run)
    traj = (jax.jit(batched) if jit else batched)(GS)
    np.testing.assert_array_equal(traj.result == fp.RESULTS.nonfinite, [False, True, False])
    np.testing.assert_array_equal(traj.result == fp.RESULTS.successful, [True, False, True])
    np.testing.assert_array_equal(traj.fail_step, [0, 1, 0])
    assert not traj.ok
    assert traj.message().startswith("batch lane 1: the state became non-finite at t=0.001 s")
    for k in (0, 2):
        np.testing.assert_array_equal(traj.v[k], _v(_rc().set("R1", "g", GS[k])))
