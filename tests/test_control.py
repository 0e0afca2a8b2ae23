"""Time-error control of `simulate` for circuits with fractional elements: uniform internal
sub-steps and Richardson's error estimate (the variable-step control of integer-order
circuits is tested in test_adaptive.py)."""

import textwrap
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pymittagleffler
import pytest

import fracprop as fp
from fracprop._circuit.netlist import NetlistError, NetlistWarning, Options, parse_netlist
from fracprop._transient.control import scheme_order

TAU = 1e-3  # the time constant of the RC circuits: R·C = τ, R·C_α = τ^α
ALPHA = 0.5
DT, STEPS = TAU / 10, 50
RTOL, ATOL = 1e-3, 1e-6


def _rc(source=1.0):
    """An integer-order RC circuit (1 kΩ, 1 µF)."""
    b = fp.CircuitBuilder("rc")
    b.vsource("V1", "in", "0", source)
    b.resistor("R1", "in", "out", 1e3)
    b.capacitor("C1", "out", "0", TAU / 1e3)
    return b.build()


def _frc():
    """The fractional RC circuit: 1 V through 1 kΩ into a CPE of order ½ with R·C_α = τ^α."""
    b = fp.CircuitBuilder("fractional rc")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1e3)
    b.cpe("P1", "out", "0", c=TAU**ALPHA / 1e3, alpha=ALPHA)
    return b.build()


def _exact(ts):
    """v(out) of the fractional RC circuit from rest: 1 − E_α(−(t/τ)^α) (pymittagleffler)."""
    z = -((np.asarray(ts) / TAU) ** ALPHA)
    return 1.0 - pymittagleffler.mittag_leffler(z, ALPHA, 1.0).real


def _tolerance(v):
    return RTOL * np.max(np.abs(v)) + ATOL


@pytest.fixture(scope="module")
def controlled():
    """The fractional RC step response with the first-order GL kernel, whose order the
    estimate assumes, under the default control."""
    return fp.simulate(_frc(), dt=DT, steps=STEPS, kernel=fp.GL())


def test_control_meets_the_tolerance_where_the_plain_grid_does_not(controlled):
    fixed = fp.simulate(_frc(), dt=DT, steps=STEPS, kernel=fp.GL(), substeps=1)
    err_fixed = np.abs(np.asarray(fixed.node("out")) - _exact(fixed.ts))
    assert np.max(err_fixed) > _tolerance(fixed.node("out"))
    v = np.asarray(controlled.node("out"))
    err = np.abs(v - _exact(controlled.ts))
    assert np.all(err <= _tolerance(v))
    assert controlled.substeps > 1 and controlled.ok and controlled.internal_steps is None
    # The outputs stay on the output grid.
    np.testing.assert_allclose(controlled.ts, np.arange(STEPS + 1) * DT, rtol=1e-15)
    assert controlled.v.shape == (STEPS + 1, 2)


def test_error_estimate_is_close_to_the_true_error(controlled):
    v = np.asarray(controlled.node("out"))
    true_ratio = np.max(np.abs(v - _exact(controlled.ts))) / _tolerance(v)
    estimate = float(controlled.error_estimate)
    assert estimate <= 1.0
    # Richardson's estimate is asymptotically exact; at this step within 20 %.
    assert 0.8 < estimate / true_ratio < 1.25


@pytest.mark.slow
def test_the_estimate_of_a_second_order_kernel_is_on_the_safe_side():
    """FBDF2 with starting weights is estimated as first order (`scheme_order`): the estimate
    overstates its error."""
    traj = fp.simulate(_frc(), dt=DT, steps=STEPS)
    v = np.asarray(traj.node("out"))
    true_ratio = np.max(np.abs(v - _exact(traj.ts))) / _tolerance(v)
    assert true_ratio <= float(traj.error_estimate) <= 1.0


def test_scheme_order():
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0)
    b.cpe("P1", "out", "0", c=1.0, alpha=0.5)
    fractional = b.build()
    euler, trap, gear = fp.BackwardEuler(), fp.Trapezoidal(), fp.Gear2()
    assert scheme_order(fp.GL(), euler, _rc()) == 1  # (integer circuits: test_adaptive.py)
    assert scheme_order(fp.GL(), trap, _rc()) == 2  # the kernel is for fractional elements
    assert scheme_order(fp.FBDF2(), gear, _rc()) == 2
    assert scheme_order(fp.FBDF2(), trap, fractional) == 1  # the safe side for small α
    assert scheme_order(fp.GL(), euler, fractional) == 1


def _parallel_frc():
    """1 mA into R ∥ CPE (1 kΩ, R·C_α = τ^α): v(out) = 1 − E_α(−(t/τ)^α) volts, no voltage
    source."""
    b = fp.CircuitBuilder("parallel fractional rc")
    b.isource("I1", "0", "out", 1e-3)
    b.resistor("R1", "out", "0", 1e3)
    b.cpe("P1", "out", "0", c=TAU**ALPHA / 1e3, alpha=ALPHA)
    return b.build()


def test_the_cap_raises_naming_time_and_node():
    # GL needs 32 internal steps for rtol=1e-3 here; allow only 2.
    kw = dict(dt=DT, steps=STEPS, kernel=fp.GL(), max_substeps=2)
    with pytest.raises(fp.SimulationError) as info:
        fp.simulate(_parallel_frc(), **kw)
    message = str(info.value)
    traj = fp.simulate(_parallel_frc(), throw=False, **kw)
    assert traj.result == fp.RESULTS.tolerance_not_met and not traj.ok
    assert traj.substeps == 2 and float(traj.error_estimate) > 1.0
    # The worst point: the largest estimated error over tolerance, from the two runs.
    one = fp.simulate(_parallel_frc(), **kw, substeps=1)
    ratio = np.abs(np.asarray(one.v[:, 0]) - np.asarray(traj.v[:, 0])) / (2**1 - 1)  # order 1
    ratio /= _tolerance(traj.v[:, 0])
    step = int(np.argmax(ratio))
    assert int(traj.fail_step) == step and traj.node_names == ("out",)
    np.testing.assert_allclose(float(traj.error_estimate), np.max(ratio), rtol=1e-12)
    assert f"t={float(traj.ts[step]):.6g} s (step {step}) on node 'out'" in message
    assert "substeps=2" in message
    for advice in ("smaller dt", "looser rtol", "substeps=k", "max_substeps"):
        assert advice in message
    # A voltage-source current can be the worst unknown too, and is named as such.
    with pytest.raises(fp.SimulationError, match="on the current of V1"):
        fp.simulate(_frc(), **kw)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(rtol=0.0), r"rtol=0.0 must be a positive finite number"),
        (dict(rtol=-1e-3), r"rtol=-0.001 must be a positive finite"),
        (dict(rtol=float("nan")), r"rtol=nan must be a positive finite"),
        (dict(rtol="1e-3"), r"rtol='1e-3' must be a positive finite"),
        (dict(atol=0), r"atol=0 must be a positive finite"),
        (dict(atol=float("inf")), r"atol=inf must be a positive finite"),
        (dict(atol_current=-1e-12), r"atol_current=-1e-12 must be a positive finite"),
        (dict(substeps=0), r"substeps=0 must be a positive integer"),
        (dict(substeps=2.5), r"substeps=2.5 must be a positive integer"),
        (dict(substeps=True), r"substeps=True must be a positive integer"),
        (dict(max_substeps=1), r"max_substeps=1 must be at least 2"),
        (dict(saveat=fp.SaveAt(states=False)), r"SaveAt\(states=False\).*pass substeps=k"),
    ],
)
def test_bad_control_options(kw, match):
    with pytest.raises(ValueError, match=match):
        fp.simulate(_rc(), dt=DT, steps=STEPS, uic=True, **kw)


def test_traced_call_without_substeps_says_what_to_pass():
    circuit = _rc()
    with pytest.raises(ValueError, match=r"inside jax.jit.*Pass substeps=k") as info:
        jax.jit(lambda c: fp.simulate(c, dt=DT, steps=STEPS, uic=True).v)(circuit)
    assert "substeps=1 for the plain grid" in str(info.value)
    with pytest.raises(ValueError, match="substeps=k"):
        jax.grad(
            lambda g: fp.simulate(circuit.set("R1", "g", g), dt=DT, steps=5, uic=True).v[-1, 1]
        )(1e-3)
    with pytest.raises(ValueError, match="substeps=k"):
        jax.vmap(lambda dt: fp.simulate(circuit, dt=dt, steps=5, uic=True).v)(jnp.ones(2) * DT)


def test_fixed_substeps_work_under_jit_and_grad():
    circuit = _rc()

    def final(g):
        traj = fp.simulate(circuit.set("R1", "g", g), dt=DT, steps=10, uic=True, substeps=4)
        return traj.node("out")[-1]

    concrete = fp.simulate(circuit, dt=DT, steps=10, uic=True, substeps=4)
    assert concrete.substeps == 4 and concrete.error_estimate is None
    # jit fuses the trapezoidal rule's arithmetic differently: equal to the last bit or two.
    np.testing.assert_allclose(jax.jit(final)(1e-3), concrete.node("out")[-1], rtol=1e-15)
    grad = jax.grad(final)(1e-3)
    h = 1e-9
    fd = (final(1e-3 + h) - final(1e-3 - h)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6)  # central differences, O(h²) + round-off


def _mixed():
    """Capacitor, CPE (fractional history) and a sine source: every kind of state."""
    b = fp.CircuitBuilder("mixed")
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 200.0))
    b.resistor("R1", "in", "out", 1e3)
    b.capacitor("C1", "out", "0", 1e-6)
    b.cpe("P1", "out", "0", c=1e-6, alpha=0.6)
    return b.build()


class _Sum(fp.AbstractAccumulator):
    """Sums v(out)² and the step indices it is given."""

    def init(self, vb0, setup):
        return jnp.zeros((), vb0.dtype), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)

    def update(self, acc, vb, n, setup):
        total, indices, steps = acc
        return total + vb[1] ** 2, indices + n.astype(jnp.int32), steps + setup.steps


def test_substeps_equal_a_plain_run_on_the_fine_grid_sampled_at_the_outputs():
    k, n = 4, 20
    saveat = fp.SaveAt(currents=True, conductances=True)
    sub = fp.simulate(_mixed(), dt=1e-4, steps=n, substeps=k, saveat=saveat, accumulator=_Sum())
    plain = fp.simulate(_mixed(), dt=1e-4 / k, steps=n * k, substeps=1, saveat=saveat)
    for field in ("v", "i_vsrc", "i_branch", "g_branch"):
        np.testing.assert_array_equal(getattr(sub, field), getattr(plain, field)[::k])
    np.testing.assert_allclose(sub.ts, plain.ts[::k], rtol=1e-15)
    # Newton iterations per output step: the most over its internal steps.
    iters = np.asarray(plain.newton_iterations[1:]).reshape(n, k).max(axis=1)
    np.testing.assert_array_equal(sub.newton_iterations[1:], iters)
    # The accumulator is folded at the output points, with output indices and grid.
    total, indices, steps = sub.accumulated
    assert plain.branch_names[1] == "C1"  # from 'out' to ground: its voltage is v(out)
    vb_out = np.asarray(plain.v[::k][1:, 1])
    np.testing.assert_allclose(total, np.sum(vb_out**2), rtol=1e-13)
    assert int(indices) == n * (n + 1) // 2 and int(steps) == n * n


def test_substeps_with_checkpoint_and_sampled_inputs():
    k, n, dt = 3, 16, 1e-4
    u = np.sin(np.linspace(0.0, 3.0, n + 1)) ** 2
    kw = dict(dt=dt, steps=n, substeps=k, inputs={"V1": jnp.asarray(u)})
    sub = fp.simulate(_mixed(), **kw)
    np.testing.assert_array_equal(fp.simulate(_mixed(), checkpoint=5, **kw).v, sub.v)
    # Sampled inputs are interpolated linearly between their samples at the internal times.
    fine = np.interp(np.arange(n * k + 1) / k, np.arange(n + 1), u)
    plain = fp.simulate(
        _mixed(), dt=dt / k, steps=n * k, substeps=1, inputs={"V1": jnp.asarray(fine)}
    )
    np.testing.assert_allclose(sub.v, plain.v[::k], rtol=1e-12, atol=1e-15)


def test_checkpointed_gradient_with_substeps_is_unchanged():
    def loss(g, checkpoint):
        c = _rc().set("R1", "g", g)
        traj = fp.simulate(c, dt=DT, steps=12, uic=True, substeps=2, checkpoint=checkpoint)
        return jnp.sum(traj.v**2)

    np.testing.assert_allclose(jax.grad(loss)(1e-3, 4), jax.grad(loss)(1e-3, None), rtol=1e-12)


def _deck(body):
    return "title\n" + textwrap.dedent(body).strip("\n") + "\n"


def test_options_reltol_vntol_abstol_are_read():
    net = parse_netlist(
        _deck(
            """
            V1 a 0 1
            R1 a 0 1k
            .options reltol=1e-4 VNTOL = 1u
            .opt abstol=1p
            """
        )
    )
    assert net.options == Options(reltol=1e-4, vntol=1e-6, abstol=1e-12)
    assert parse_netlist(_deck("V1 a 0 1\nR1 a 0 1k")).options == Options()


@pytest.mark.parametrize(
    "card, match",
    [
        (".options reltol=0", r"line 4: \.options reltol=0 must be a positive number"),
        (".options vntol=-1u", r"line 4: \.options vntol=-1u must be a positive number"),
        (".options abstol=", r"line 4: option abstol= has no value"),
        (".options reltol", r"line 4: option reltol needs a value"),
        (".options reltol=abc", r"line 4: \.options reltol"),
    ],
)
def test_bad_options_name_the_option_and_line(card, match):
    with pytest.raises(NetlistError, match=match):
        parse_netlist(_deck(f"V1 a 0 1\nR1 a 0 1k\n{card}"))


def test_other_options_warn():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", NetlistWarning)
        net = parse_netlist(_deck("V1 a 0 1\nR1 a 0 1k\n.options gmin=1e-12 noacct reltol=1e-2"))
    assert net.options.reltol == 1e-2
    messages = [str(w.message) for w in record]
    assert messages == ["line 4: .options gmin=1e-12 noacct ignored"]


def test_trajectory_records_substeps_statically():
    traj = fp.simulate(_rc(), dt=DT, steps=4, uic=True, substeps=2)
    dynamic, static = eqx.partition(traj, eqx.is_array)
    assert static.substeps == 2 and dynamic.error_estimate is None
