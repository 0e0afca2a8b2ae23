"""Circuits, trainable parameters and gradients print as what they are."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from helpers import every_element_circuit

import fracprop as fp


def _problem():
    b = fp.CircuitBuilder("two synapses")
    b.vsource("V0", "in", "0", 0.0)
    b.resistor("R1", "in", "out", 2.0)
    b.resistor("R2", "out", "0", 4.0)
    b.capacitor("C1", "out", "0", 0.5)
    steps, dt = 20, 0.05
    problem = fp.LearningProblem(b.build(), inputs=("V0",), outputs=("out",), dt=dt, steps=steps)
    ts = np.arange(steps + 1) * dt
    u = jnp.asarray(np.sin(3 * ts))[None]
    return problem, u, 0.3 * u


def test_circuit_lists_elements_with_units():
    text = str(every_element_circuit())
    assert "ohm" in text and "Resistors" in text


def test_gradient_prints_named_values_without_units():
    problem, u, t = _problem()
    grads = fp.Replay()(problem, problem.params(), u, t)
    ref = jax.grad(problem.loss)(problem.params(), u, t)
    text = str(grads)
    assert "ohm" not in text and "parameters:" in text
    values = grads.parameters()
    assert set(values) == {"R1.g", "R2.g"}
    # The printed number is the gradient entry itself (Replay equals jax.grad here).
    np.testing.assert_allclose(float(values["R1.g"]), float(ref.parameters()["R1.g"]), rtol=1e-9)
    assert f"R1.g = {float(values['R1.g']):.6g}" in text


def test_any_tree_of_circuit_structure_prints():
    problem, _, _ = _problem()
    params = problem.params()
    shapes = jax.tree.map(lambda x: x.shape, params)
    text = str(shapes)
    assert "Resistors.g = (2,)" in text
    dtypes = jax.tree.map(lambda x: str(x.dtype), params)
    assert "Resistors.g = 'float" in str(dtypes)
    # Inside jit the leaves are tracers: the listing names them instead of failing.

    @jax.jit
    def f(p):
        assert "R1.g" in str(p)
        return p

    f(params)


def test_full_circuit_gradient_has_named_parameters():
    circuit = every_element_circuit()
    grads = jax.tree.map(jnp.zeros_like, eqx.filter(circuit, eqx.is_inexact_array))
    values = grads.parameters()
    for name in circuit.branch_names:
        assert any(k.startswith(f"{name}.") for k in values)
