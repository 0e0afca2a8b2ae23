"""History backends: SOE against the exact convolution, gradients, and memory growth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp
from fracprop._history import gl_soe_coefficients, soe_nodes


@pytest.mark.parametrize("order", [0.5, -0.5, 0.3, -0.3, 0.9, -0.9, 0.05, -0.99])
def test_soe_reproduces_far_gl_weights(order):
    # DESIGN §2: ~100 modes and L = 128 match exact GL to ~1e-13 for N ≤ 65536.
    steps, near = 65536, 128
    w = np.asarray(fp.GL().weights(jnp.asarray([order]), steps))[0]
    v, dv, _ = soe_nodes(1e-12, near, steps)
    c, s = gl_soe_coefficients(jnp.asarray([order]), v, dv)
    j = np.arange(near + 1, steps + 1)
    approx = np.exp(np.log(np.asarray(s))[None, :] * j[:, None]) @ np.asarray(c[0])
    assert len(v) <= 200
    assert np.max(np.abs(approx - w[near + 1 :])) <= 1e-12 * np.max(np.abs(w[1:]))


def _network():
    circuit, inputs, outputs = fp.layered_network(fp.NetworkSpec(hidden=(3,)))
    return circuit


def _run(history, steps=600, dt=0.05):
    circuit = _network()
    ts = np.arange(steps + 1) * dt
    u = fp.multisine(2, ts, 1.0)
    return fp.simulate(
        circuit, dt=dt, steps=steps, inputs={"V0": u[0], "V1": u[1]}, history=history
    )


def test_soe_matches_exact_history_on_a_memristor_network():
    exact, soe = _run(fp.Exact()), _run(fp.SOE(tol=1e-12))
    rel = float(jnp.max(jnp.abs(soe.v - exact.v)) / jnp.max(jnp.abs(exact.v)))
    # The bound for tol = 1e-12 is 1e-9; measured ~1e-13.
    assert rel <= 1e-9, rel


def test_soe_short_runs_use_a_shorter_near_field():
    exact, soe = _run(fp.Exact(), steps=40), _run(fp.SOE(), steps=40)
    np.testing.assert_allclose(soe.v, exact.v, rtol=1e-12, atol=1e-14)


def test_replay_is_exact_with_soe_history():
    problem, u, targets = fp.regime_problem(1.0, steps=200)
    problem = problem.replace(history=fp.SOE())
    params = problem.params()
    ref = fp.Autodiff()(problem, params, u, targets)
    rep = fp.Replay()(problem, params, u, targets)
    m = fp.validation.compare(rep, ref)["overall"]
    # Replay is the exact adjoint of whatever convolution the backend applies.
    assert m["rel_l2"] <= 1e-12, m


def test_soe_rejects_other_kernels_and_bad_settings():
    class Other(fp.AbstractKernel):
        def weights(self, order, steps):
            return fp.GL().weights(order, steps)

    with pytest.raises(ValueError, match="GL kernel only"):
        fp.SOE().init(Other(), jnp.asarray([0.5]), 10)
    with pytest.raises(ValueError, match="tol"):
        fp.SOE(tol=0.5)


def _grad_temp_bytes(history, steps):
    circuit, _, _ = fp.layered_network(fp.NetworkSpec(hidden=(1,)))
    ts = np.arange(steps + 1) * 0.05
    u = jnp.asarray(fp.multisine(2, ts, 1.0))

    def loss(alpha):
        c = circuit.set("M_h0_0", "alpha", alpha)
        v = fp.simulate(
            c, dt=0.05, steps=steps, inputs={"V0": u[0], "V1": u[1]}, history=history, throw=False
        ).v
        return jnp.sum(v**2)

    compiled = jax.jit(jax.grad(loss)).lower(0.5).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_gradient_memory_grows_linearly_with_soe():
    # DESIGN §3: a full-history scan stores O(N) per step in reverse mode (O(N²) in all) when
    # the weights are differentiated (here w.r.t. a memristor's α); the SOE carry is O(K + L),
    # so its compiled temporary memory must grow like N.
    sizes = [256, 512, 1024]
    soe = [_grad_temp_bytes(fp.SOE(), n) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(soe), 1)[0]
    assert slope <= 1.1, (slope, soe)
    exact = [_grad_temp_bytes(fp.Exact(), n) for n in sizes]
    slope_exact = np.polyfit(np.log(sizes), np.log(exact), 1)[0]
    assert slope_exact >= 1.8, (slope_exact, exact)  # the trap SOE avoids
