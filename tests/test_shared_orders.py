"""Channels of the same order share their weights: backends, circuits, guards."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp
from fracprop._fractional.history import channel_layout

BACKENDS = [fp.Exact(), fp.Dense(block=16), fp.HLS(leaf=16), fp.SOE()]
IDS = ["exact", "dense", "hls", "soe"]
ORDERS = jnp.asarray([0.5, -0.3, 0.9])


def _sums_and_state(backend, orders, classes, xs):
    """``H[n]`` for n = 1 … N (x[0] pushed first, as EP's contrast does) and the state."""
    steps = xs.shape[0] - 1

    @jax.jit
    def run(xs):
        state = backend.init(fp.GL(), orders, steps, classes)
        state = backend.push(state, jnp.asarray(0), xs[0])

        def step(state, n):
            return backend.push(state, n, xs[n]), backend.history(state, n)

        return jax.lax.scan(step, state, jnp.arange(1, steps + 1))

    final, sums = run(xs)
    return sums, final


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize(
    "classes, rows",
    [
        ((0, 0, 1, 1, 2, 2), 3),  # already grouped
        ((2, 0, 1, 0, 2, 1), 3),  # interleaved: the backend permutes the channels
        ((0, 0, 0, 1, 2, 2), 6),  # unequal classes: one row per channel
    ],
    ids=["grouped", "interleaved", "unequal"],
)
def test_shared_weights_give_the_per_channel_sums(backend, classes, rows):
    steps = 300
    xs = jax.random.normal(jax.random.key(3), (steps + 1, len(classes)))
    per_channel = ORDERS[np.asarray(classes)]
    ref, _ = _sums_and_state(backend, per_channel, None, xs)
    out, state = _sums_and_state(backend, ORDERS, classes, xs)
    # The same finite sums, grouped differently (measured ≤ 3e-16 relative).
    assert float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref))) <= 1e-13
    # The weights are stored once per order, not per channel, when the classes are equal.
    weights = {
        "Exact": lambda s: s.weights,
        "Dense": lambda s: s.hankel,
        "HLS": lambda s: s.spectra[0],
        "SOE": lambda s: s.c,
    }[type(backend).__name__](state)
    assert weights.shape[0] == rows


def test_shared_weights_under_vmap():
    steps, classes = 80, (1, 0, 1, 0)
    xs = jax.random.normal(jax.random.key(4), (5, steps + 1, 4))
    ref = jax.vmap(
        lambda x: _sums_and_state(fp.Dense(block=16), ORDERS[:2][np.asarray(classes)], None, x)[0]
    )(xs)
    out = jax.vmap(lambda x: _sums_and_state(fp.Dense(block=16), ORDERS[:2], classes, x)[0])(xs)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("classes", [(0, 3), (0, 0), (-1, 0, 1, 2)])
def test_channel_layout_rejects_classes_that_do_not_fit_the_orders(classes):
    with pytest.raises(ValueError, match="must use each of the 3 orders"):
        channel_layout(ORDERS, classes)


# ------------------------------------------------------------------------------- circuits
def _fractional_circuit():
    """Four memristors in two equal classes of α, three CPEs in unequal classes."""
    b = fp.CircuitBuilder()
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 0.5))
    for k, alpha in enumerate([0.5, 0.7, 0.5, 0.7]):
        b.resistor(f"R{k}", "in", f"n{k}", 1.0 + 0.1 * k)
        b.memristor(f"M{k}", f"n{k}", "0", g=0.5, alpha=alpha, law=fp.Tanh())
    for k, alpha in enumerate([0.6, 0.6, 0.8]):
        b.cpe(f"P{k}", f"n{k}", "0", c=0.2, alpha=alpha)
    return b.build()


def test_share_orders_records_classes_of_equal_alpha():
    circuit = _fractional_circuit()
    assert [getattr(g, "order_classes", "-") for g in circuit.groups if g.fractional] == [
        None,
        None,
    ]
    shared = circuit.share_orders()
    mem, cpe = (g for g in shared.groups if g.fractional)
    assert mem.order_classes == (0, 1, 0, 1)
    assert cpe.order_classes == (0, 0, 1)
    # Setting an alpha drops that group's classes only; share_orders(False) drops them all.
    changed = shared.set("M1", "alpha", 0.5)
    assert [g.order_classes for g in changed.groups if g.fractional] == [None, (0, 0, 1)]
    assert all(g.order_classes is None for g in shared.share_orders(False).groups if g.fractional)
    # All-distinct orders share nothing, so their alpha stay differentiable.
    distinct = circuit.set("M2", "alpha", 0.3).set("M3", "alpha", 0.9).set("P1", "alpha", 0.7)
    assert all(g.order_classes is None for g in distinct.share_orders().groups if g.fractional)


@pytest.mark.parametrize("history", ["exact", "dense", "hls", "soe"])
def test_shared_and_per_element_weights_simulate_the_same(history):
    circuit = _fractional_circuit()
    runs = [
        fp.simulate(circuit, dt=0.02, steps=200, history=history, share_orders=share, substeps=1).v
        for share in (True, False)
    ]
    scale = float(jnp.max(jnp.abs(runs[1])))
    assert float(jnp.max(jnp.abs(runs[0] - runs[1]))) <= 1e-13 * scale


def _output_energy(circuit, steps=60):
    # α may be differentiated here: no precomputed starting weights.
    traj = fp.simulate(circuit, dt=0.02, steps=steps, throw=False, substeps=1, starting=False)
    return jnp.sum(traj.v**2)


def test_differentiating_shared_orders_raises_and_unshared_orders_differentiate():
    circuit = _fractional_circuit()
    with pytest.raises(ValueError, match="M0, M1, M2, M3 are shared"):
        jax.grad(_output_energy)(circuit.share_orders())
    # Traced orders are not shared by `simulate`: the gradient reaches every alpha and
    # matches a central difference.
    grads = jax.grad(_output_energy)(circuit)
    mem_index = next(i for i, g in enumerate(circuit.groups) if g.kind == "Memristors")
    d_alpha = float(grads.groups[mem_index].alpha[2])
    eps = 1e-6
    up = _output_energy(circuit.set("M2", "alpha", 0.5 + eps))
    down = _output_energy(circuit.set("M2", "alpha", 0.5 - eps))
    assert abs(d_alpha - float(up - down) / (2 * eps)) <= 1e-6 * max(1.0, abs(d_alpha))


def test_conductance_gradients_through_shared_orders_equal_per_element_ones():
    circuit = _fractional_circuit()

    def energy(g, base):
        return _output_energy(eqx.tree_at(lambda c: c.groups[0].g, base, g))

    g0 = circuit.groups[0].g
    shared = jax.jit(jax.grad(energy))(g0, circuit.share_orders())
    per_element = jax.jit(jax.grad(energy))(g0, circuit.share_orders(False))
    np.testing.assert_allclose(shared, per_element, rtol=1e-12, atol=0)


def test_changed_orders_after_sharing_raise():
    shared = _fractional_circuit().share_orders()
    mem_index = next(i for i, g in enumerate(shared.groups) if g.kind == "Memristors")
    stale = eqx.tree_at(
        lambda c: c.groups[mem_index].alpha, shared, jnp.asarray([0.5, 0.7, 0.55, 0.7])
    )
    with pytest.raises(Exception, match="changed after Circuit.share_orders"):
        jax.jit(lambda c: fp.simulate(c, dt=0.02, steps=10, substeps=1, starting=False).v)(
            stale
        ).block_until_ready()


def test_learning_problem_shares_fixed_orders_and_keeps_trained_ones_per_element():
    problem, u, targets = fp.regime_problem(1.0, steps=60)
    mem_index = next(i for i, g in enumerate(problem.circuit.groups) if g.kind == "Memristors")
    assert dict(problem.order_classes)[mem_index] == (0, 0, 0, 0)
    assert problem.combine(problem.params()).groups[mem_index].order_classes == (0, 0, 0, 0)
    trained = problem.replace(trainable=["R*", "M*.alpha"])
    assert dict(trained.order_classes)[mem_index] is None
    grads = jax.grad(lambda p: trained.loss(p, u, targets))(trained.params())
    assert np.all(np.isfinite(grads.groups[mem_index].alpha))
    assert np.any(grads.groups[mem_index].alpha != grads.groups[mem_index].alpha[0])
