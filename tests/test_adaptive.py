"""Variable internal steps with local-truncation-error control (`simulate` with
``substeps=None`` on circuits without fractional elements), against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp
from fracprop._transient import simulate as simulate_module
from fracprop._transient.adaptive import breakpoints

TAU = 1e-3  # R·C
DT, STEPS = TAU / 10, 50
RTOL, ATOL = 1e-3, 1e-6


def _rc(source=1.0):
    b = fp.CircuitBuilder("rc")
    b.vsource("V1", "in", "0", source)
    b.resistor("R1", "in", "out", 1e3)
    b.capacitor("C1", "out", "0", TAU / 1e3)
    return b.build()


def _tolerance(v):
    return RTOL * np.max(np.abs(v)) + ATOL


def _rc_response(times, values, ts):
    """v(out) of the RC circuit from rest driven by the piecewise-linear ``(times, values)``
    (held before and after): on a segment ``u = a + b t``, ``v = u − bτ + C e^{−t/τ}``."""
    times = np.concatenate([[0.0], np.asarray(times, float), [np.inf]])
    values = np.concatenate([[values[0]], np.asarray(values, float), [values[-1]]])
    out = np.zeros_like(ts)
    v0 = 0.0
    for k in range(len(times) - 1):
        t0, t1 = times[k], times[k + 1]
        slope = 0.0 if not np.isfinite(t1) or t1 == t0 else (values[k + 1] - values[k]) / (t1 - t0)

        def on(t, t0=t0, u0=values[k], slope=slope, v0=v0):
            u = u0 + slope * (t - t0)
            return u - slope * TAU + (v0 - u0 + slope * TAU) * np.exp(-(t - t0) / TAU)

        inside = (ts >= t0) & (ts <= t1)
        out[inside] = on(ts[inside])
        if np.isfinite(t1):
            v0 = on(t1)
    return out


@pytest.mark.parametrize("method", ["trap", "gear", "euler"])
def test_rc_step_within_tolerance_at_every_output_point(method):
    traj = fp.simulate(_rc(), dt=DT, steps=STEPS, uic=True, method=method)
    v = np.asarray(traj.node("out"))
    err = np.abs(v - (1.0 - np.exp(-np.asarray(traj.ts) / TAU)))
    true_ratio = np.max(err) / _tolerance(v)
    assert traj.ok and traj.substeps is None
    assert int(traj.internal_steps) > STEPS  # the plain grid misses the tolerance
    # The estimate is the sum of the local error estimates: it bounds the global error of
    # this contracting circuit (here it overstates it by a factor of 3.5 to 5).
    assert true_ratio <= float(traj.error_estimate) <= 1.0, (true_ratio, traj.error_estimate)
    np.testing.assert_allclose(traj.ts, np.arange(STEPS + 1) * DT, rtol=1e-15)


def test_plain_grid_misses_the_tolerance_that_the_control_meets():
    fixed = fp.simulate(_rc(), dt=DT, steps=STEPS, uic=True, method="euler", substeps=1)
    v = np.asarray(fixed.node("out"))
    assert np.max(np.abs(v - (1.0 - np.exp(-np.asarray(fixed.ts) / TAU)))) > _tolerance(v)


PWL_TIMES = (0.37e-3, 0.371e-3, 1.913e-3, 1.915e-3, 3.3e-3, 3.9e-3)
PWL_VALUES = (0.0, 1.0, 1.0, -0.5, -0.5, 0.2)


def test_source_corners_off_the_output_grid():
    """Steep PWL edges between output points: the steps end at every corner."""
    traj = fp.simulate(_rc(fp.PWL(PWL_TIMES, PWL_VALUES)), dt=DT, steps=STEPS, uic=True)
    v = np.asarray(traj.node("out"))
    exact = _rc_response(PWL_TIMES, PWL_VALUES, np.asarray(traj.ts))
    assert np.max(np.abs(v - exact)) <= _tolerance(v)
    assert float(traj.error_estimate) <= 1.0


def test_a_pulse_between_output_points_is_not_stepped_over(monkeypatch):
    """A 4 µs pulse inside one 100 µs output step: the breakpoints make the steps land on
    its corners. Without them the step, which grows to dt while the source is quiet, jumps
    over it (no state variable changes, so no estimate can see it)."""
    times, values = (0.37e-3, 0.371e-3, 0.374e-3, 0.375e-3), (0.0, 1.0, 1.0, 0.0)
    circuit = _rc(fp.PWL(times, values))
    exact = _rc_response(times, values, np.arange(STEPS + 1) * DT)
    traj = fp.simulate(circuit, dt=DT, steps=STEPS, uic=True)
    assert np.max(np.abs(np.asarray(traj.node("out")) - exact)) <= _tolerance(exact)
    monkeypatch.setattr(simulate_module, "breakpoints", lambda *a: np.zeros((0,)))
    blind = fp.simulate(circuit, dt=DT, steps=STEPS, uic=True)
    assert np.max(np.abs(np.asarray(blind.node("out")) - exact)) > 100 * _tolerance(exact)


def test_gear_on_a_variable_grid_is_exact_for_quadratics():
    h_prev, h = 0.3, 0.5
    a = np.asarray(fp.Gear2().variable_a(jnp.asarray(h / h_prev)))
    t = np.array([1.0, 1.0 - h, 1.0 - h - h_prev])
    for f, df in ((lambda t: t**2, 2.0), (lambda t: t, 1.0), (lambda t: 1.0 + 0 * t, 0.0)):
        np.testing.assert_allclose(a @ f(t) / h, df, atol=1e-14)
    np.testing.assert_allclose(fp.Gear2().variable_a(jnp.asarray(1.0)), [1.5, -2.0, 0.5])


def test_waveform_breakpoints():
    pulse = fp.Pulse(0, 1, td=1e-3, tr=1e-4, tf=2e-4, pw=5e-4, per=2e-3)
    np.testing.assert_allclose(
        pulse.breakpoints(5e-3),
        [1e-3, 1.1e-3, 1.6e-3, 1.8e-3, 3e-3, 3.1e-3, 3.6e-3, 3.8e-3, 5e-3],
        rtol=1e-12,
    )
    # A period that ends with its fall: the last corner is the next period's start.
    np.testing.assert_allclose(
        fp.Pulse(0, 1, tr=1.0, tf=1.0, pw=1.0, per=3.0).breakpoints(7.0), [1, 2, 3, 4, 5, 6, 7]
    )
    np.testing.assert_allclose(fp.Pulse(0, 1, td=0.1, tr=0.1).breakpoints(1.0), [0.1, 0.2])
    np.testing.assert_allclose(fp.PWL([0, 1, 2], [0, 1, 0]).breakpoints(1.5), [1.0])
    np.testing.assert_allclose(fp.Sin(0, 1, 1e3, td=2e-3).breakpoints(1.0), [2e-3])
    assert fp.Sin(0, 1, 1e3).breakpoints(1.0).size == 0
    assert fp.DC(1.0).breakpoints(1.0).size == 0


def test_breakpoints_near_an_output_point_are_that_point():
    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", fp.PWL([0.3 + 1e-13, 0.45, 0.45 + 1e-13, 0.9], [0, 1, 2, 3]))
    b.resistor("R1", "a", "0", 1.0)
    got = breakpoints(b.build(), 1.0, 0.1)
    np.testing.assert_allclose(got, [0.3, 0.45, 0.9], rtol=0, atol=1e-15)
    assert got[0] == 3 * 0.1  # exactly the output time n·dt


def test_circuit_without_memory_is_exact_on_the_output_grid():
    b = fp.CircuitBuilder("divider")
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 300.0))
    b.resistor("R1", "in", "out", 1e3)
    b.resistor("R2", "out", "0", 2e3)
    traj = fp.simulate(b.build(), dt=DT, steps=STEPS)
    assert float(traj.error_estimate) == 0.0
    np.testing.assert_allclose(
        traj.node("out"), (2 / 3) * np.sin(2 * np.pi * 300.0 * np.asarray(traj.ts)), atol=1e-15
    )


class _Sum(fp.AbstractAccumulator):
    """Sums v(out)² and the step indices it is given."""

    def init(self, vb0, setup):
        return jnp.zeros((), vb0.dtype), jnp.zeros((), jnp.int32)

    def update(self, acc, vb, n, setup):
        total, indices = acc
        return total + vb[1] ** 2, indices + n.astype(jnp.int32)


def test_outputs_and_accumulator_at_the_output_points():
    saveat = fp.SaveAt(currents=True, conductances=True)
    traj = fp.simulate(
        _rc(fp.Sin(0.0, 1.0, 300.0)), dt=DT, steps=STEPS, saveat=saveat, accumulator=_Sum()
    )
    assert traj.i_branch.shape == (STEPS + 1, 2) and traj.g_branch.shape == (STEPS + 1, 2)
    assert traj.newton_iterations.shape == (STEPS + 1,)
    # The resistor's current is the difference of its node voltages over R at every output.
    v = np.asarray(traj.v)
    np.testing.assert_allclose(traj.i_branch[:, 0], (v[:, 0] - v[:, 1]) / 1e3, atol=1e-15)
    total, indices = traj.accumulated
    np.testing.assert_allclose(total, np.sum(v[1:, 1] ** 2), rtol=1e-13)
    assert int(indices) == STEPS * (STEPS + 1) // 2


def test_an_unreachable_tolerance_stops_naming_time_and_node():
    kw = dict(dt=DT, steps=STEPS, uic=True, rtol=1e-14, atol=1e-20, max_substeps=2)
    with pytest.raises(fp.SimulationError) as info:
        fp.simulate(_rc(), **kw)
    message = str(info.value)
    traj = fp.simulate(_rc(), throw=False, **kw)
    assert traj.result == fp.RESULTS.tolerance_not_met
    step = int(traj.fail_step)
    assert step >= 1
    assert f"t={float(traj.ts[step]):.6g} s (step {step})" in message
    assert "128 tries" not in message and "64·max_substeps tries" in message
    for advice in ("looser rtol", "substeps=k", "max_substeps"):
        assert advice in message


def test_float32():
    traj = fp.simulate(_rc(), dt=DT, steps=STEPS, uic=True, dtype=jnp.float32)
    v = np.asarray(traj.node("out"), np.float64)
    assert traj.v.dtype == jnp.float32 and traj.ok
    assert np.max(np.abs(v - (1.0 - np.exp(-np.asarray(traj.ts, np.float64) / TAU)))) <= (
        _tolerance(v)
    )


def test_traced_values_need_substeps():
    with pytest.raises(ValueError, match="substeps=k"):
        jax.jit(lambda c: fp.simulate(c, dt=DT, steps=STEPS, uic=True).v)(_rc())
