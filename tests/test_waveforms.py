"""Source waveforms evaluated directly: SPICE's PULSE period boundary (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp


def test_pulse_holds_the_end_of_its_period_at_t_equal_per():
    # PW = PER (the netlist defaults PW = PER = TSTOP): the pulse is still at V2 at τ = PER,
    # as in ngspice, which starts a new period only once τ > PER.
    wave = fp.Pulse(0.0, 1.0, td=0.0, tr=1e-5, tf=1e-5, pw=1e-3, per=1e-3)
    assert float(wave(jnp.asarray(1e-3))) == 1.0
    # Just after PER the second period has begun: τ − PER = 1 µs into a 10 µs rise.
    assert float(wave(jnp.asarray(1e-3 + 1e-6))) == pytest.approx(0.1, rel=1e-9)
    # At τ = 2 PER, τ − PER·⌊τ/PER⌋ = 0: the start of the third period, V1 (ngspice's floor).
    assert float(wave(jnp.asarray(2e-3))) == 0.0


def test_pulse_boundary_with_delay_and_a_full_cycle():
    # TD = 0.1 ms, a 0.3 ms period ending at V1: τ = PER (t = 0.4 ms) is the end of the fall.
    wave = fp.Pulse(0.0, 2.0, td=1e-4, tr=5e-5, tf=5e-5, pw=2e-4, per=3e-4)
    ts = jnp.asarray([1e-4, 1.25e-4, 3.75e-4, 4e-4, 4.25e-4, 7e-4, 7.25e-4])
    expected = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(np.asarray(jax.vmap(wave)(ts)), expected, rtol=1e-12, atol=1e-12)


def test_pulse_is_differentiable_across_periods():
    # In the rise of the second period, v = V1 + (V2 − V1)(τ − PER)/TR: ∂v/∂PER = −(V2 − V1)/TR
    # and ∂v/∂t = (V2 − V1)/TR; at τ = PER on the flat top both derivatives are 0.
    def value(per, t):
        return fp.Pulse(0.0, 1.0, td=0.0, tr=1e-5, tf=1e-5, pw=2e-3, per=per)(t)

    per, t = jnp.asarray(1e-3), jnp.asarray(1e-3 + 5e-6)
    d_per, d_t = jax.grad(value, argnums=(0, 1))(per, t)
    assert float(d_per) == pytest.approx(-1e5, rel=1e-9)
    assert float(d_t) == pytest.approx(1e5, rel=1e-9)
    d_per, d_t = jax.grad(value, argnums=(0, 1))(per, per)
    assert float(d_per) == 0.0 and float(d_t) == 0.0
