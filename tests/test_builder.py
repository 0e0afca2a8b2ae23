"""Structural errors raised by the Python builder, and the circuit listing."""

import jax.numpy as jnp
import pytest

import fracprop as fp


def _rc():
    b = fp.CircuitBuilder("rc")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1e3)
    b.capacitor("C1", "out", "0", 1e-6)
    return b


def test_listing_is_readable():
    text = str(_rc().build())
    assert "Circuit 'rc'" in text
    assert "R1" in text and "R=1000 ohm" in text
    assert "C=1e-06 F law=linear" in text
    assert "DC 1" in text


def test_get_and_set_parameters():
    c = _rc().build()
    assert float(c.get("R1", "g")) == pytest.approx(1e-3)
    c2 = c.set("r1", "g", 2e-3)
    assert float(c2.get("R1", "g")) == pytest.approx(2e-3)
    assert float(c.get("R1", "g")) == pytest.approx(1e-3)  # the original is unchanged
    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", 1.0)
    b.memristor("M1", "a", "0", g=1e-3, alpha=0.5, law=fp.Tanh(0.1))
    c3 = b.build().set("M1", "scale", 0.2)
    assert float(c3.get("M1", "scale")) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda b: b.resistor("R1", "a", "0", 1.0), "duplicate element name 'R1'"),
        (lambda b: b.resistor("r1", "a", "0", 1.0), "duplicate element name 'r1'"),
        (lambda b: b.resistor("R9", "a", "0", 0.0), "R must be positive"),
        (lambda b: b.resistor("R9", "a", "0", -5.0), "R must be positive"),
        (lambda b: b.capacitor("C9", "a", "0", 0.0), "C must be positive"),
        (lambda b: b.inductor("L9", "a", "0", -1e-3), "L must be positive"),
        (lambda b: b.resistor("R9", "a", "0", "abc"), "R='abc' is not a number"),
        (
            lambda b: b.memristor("M9", "a", "0", g=1.0, alpha=0.0),
            r"alpha=0.0 must lie in \(0, 1\]",
        ),
        (
            lambda b: b.memristor("M9", "a", "0", g=1.0, alpha=1.5),
            r"alpha=1.5 must lie in \(0, 1\]",
        ),
        (lambda b: b.cpe("P9", "a", "0", c=1.0, alpha=-0.2), r"alpha=-0.2 must lie in \(0, 1\]"),
        (lambda b: b.resistor("R9", "a", "a", 1.0), "both terminals"),
        (lambda b: b.resistor(3, "a", "0", 1.0), "non-empty string"),
    ],
)
def test_element_errors_name_the_input(build, message):
    b = _rc()
    with pytest.raises(fp.CircuitError, match=message):
        build(b)


def test_empty_circuit():
    with pytest.raises(fp.CircuitError, match="empty"):
        fp.CircuitBuilder().build()


def test_floating_node():
    b = _rc()
    b.capacitor("C2", "out", "island", 1e-6)
    with pytest.raises(fp.CircuitError, match="node 'island' has no DC path to ground"):
        b.build()


def test_current_source_alone_is_floating():
    b = _rc()
    b.isource("I1", "0", "x", 1e-3)
    with pytest.raises(fp.CircuitError, match="'x' has no DC path"):
        b.build()


def test_voltage_source_loop_names_the_loop():
    b = _rc()
    b.vsource("V2", "in", "mid", 0.5)
    b.vsource("V3", "mid", "0", 0.5)
    with pytest.raises(fp.CircuitError, match="loop of voltage sources: .*V3"):
        b.build()


def test_inductor_loop_is_caught_before_the_operating_point():
    b = fp.CircuitBuilder()
    b.vsource("V1", "a", "0", 1.0)
    b.inductor("L1", "a", "0", 1e-3)
    c = b.build()  # fine for a run from rest
    with pytest.raises(fp.CircuitError, match="inductors"):
        fp.simulate(c, dt=1e-6, steps=2)
    fp.simulate(c, dt=1e-6, steps=2, uic=True)


def test_pwl_times_must_increase():
    with pytest.raises(ValueError, match=r"PWL times must increase strictly: time 1 \(point 3\)"):
        fp.PWL([0.0, 1.0, 1.0], [0.0, 1.0, 2.0])


def test_laws_reject_nonpositive_scale():
    with pytest.raises(ValueError, match="Tanh"):
        fp.Tanh(0.0)


def test_with_sources_rejects_non_source():
    c = _rc().build()
    with pytest.raises(fp.CircuitError, match="'R1' is not an independent source"):
        c.with_sources({"R1": jnp.zeros(3)}, dt=0.1)
    with pytest.raises(fp.CircuitError, match="no element named 'V9'"):
        c.with_sources({"V9": jnp.zeros(3)}, dt=0.1)
