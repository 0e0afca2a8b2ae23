"""History backends against the exact convolution: SOE, Dense, HLS; gradients, memory, names."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BLOCKED_BACKENDS, BLOCKED_IDS

import fracprop as fp
from fracprop._fractional.history import AUTO_SOE_STEPS
from fracprop._fractional.history.soe import gl_soe_coefficients, soe_nodes


@pytest.mark.parametrize("order", [0.5, -0.5, 0.3, -0.3, 0.9, -0.9, 0.05, -0.99])
def test_soe_reproduces_far_gl_weights(order):
    # docs/design.md §3: ~100 modes and L = 128 match exact GL to ~1e-13 for N ≤ 65536.
    steps, near = 65536, 128
    w = np.asarray(fp.GL().weights(jnp.asarray([order]), steps))[0]
    v, dv, _ = soe_nodes(1e-12, near, steps)
    c, s = gl_soe_coefficients(jnp.asarray([order]), v, dv)
    j = np.arange(near + 1, steps + 1)
    approx = np.exp(np.log(np.asarray(s))[None, :] * j[:, None]) @ np.asarray(c[0])
    assert len(v) <= 200
    assert np.max(np.abs(approx - w[near + 1 :])) <= 1e-12 * np.max(np.abs(w[1:]))


@pytest.mark.parametrize("order", [0.5, -0.5, 0.9, -0.9, 0.05, -0.99])
def test_soe_reproduces_far_fbdf2_weights(order):
    # FBDF2's weights filter the GL weights with 49 taps (`FBDF2.gl_taps`), so its far
    # weights are GL's modes with new coefficients c_k Σ_m t_m s_k^{−m}. Same bound as GL's.
    steps, near = 65536, 128
    kernel = fp.FBDF2()
    w = np.asarray(kernel.weights(jnp.asarray([order]), steps))[0]
    state = fp.SOE().init(kernel, jnp.asarray([order]), steps)
    s, c = np.asarray(state.s), np.asarray(state.c[0])
    j = np.arange(near + 1, steps + 1)
    approx = np.exp(np.log(s)[None, :] * j[:, None]) @ c
    np.testing.assert_array_equal(np.asarray(state.near_w[0]), w[1 : near + 1])
    assert np.max(np.abs(approx - w[near + 1 :])) <= 1e-12 * np.max(np.abs(w[1:]))


def test_soe_with_fbdf2_matches_exact_history_sums():
    steps = 700
    xs = jax.random.normal(jax.random.key(2), (steps + 1, MIXED_ORDERS.shape[0]))
    ref = _history_sums(fp.Exact(), fp.FBDF2(), MIXED_ORDERS, xs)
    out = _history_sums(fp.SOE(), fp.FBDF2(), MIXED_ORDERS, xs)
    assert _rel(out, ref) <= 1e-9


def _network():
    circuit, inputs, outputs = fp.layered_network(fp.NetworkSpec(hidden=(3,)))
    return circuit


def _run(history, steps=600, dt=0.05, kernel=fp.GL()):
    circuit = _network()
    ts = np.arange(steps + 1) * dt
    u = fp.multisine(2, ts, 1.0)
    return fp.simulate(
        circuit,
        dt=dt,
        steps=steps,
        inputs={"V0": u[0], "V1": u[1]},
        history=history,
        kernel=kernel,
        substeps=1,
    )


def test_soe_matches_exact_history_on_a_memristor_network():
    exact, soe = _run(fp.Exact()), _run(fp.SOE(tol=1e-12))
    rel = float(jnp.max(jnp.abs(soe.v - exact.v)) / jnp.max(jnp.abs(exact.v)))
    # The required bound for tol = 1e-12 is 1e-9; measured ~1e-13.
    assert rel <= 1e-9, rel


def test_soe_matches_exact_history_on_a_memristor_network_with_fbdf2():
    exact = _run(fp.Exact(), kernel=fp.FBDF2())
    soe = _run(fp.SOE(tol=1e-12), kernel=fp.FBDF2())
    rel = float(jnp.max(jnp.abs(soe.v - exact.v)) / jnp.max(jnp.abs(exact.v)))
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

    with pytest.raises(ValueError, match="finite filter of the GL weights.*HLS"):
        fp.SOE().init(Other(), jnp.asarray([0.5]), 10)
    with pytest.raises(ValueError, match="near=40 must exceed 49 with the FBDF2 kernel"):
        fp.SOE(near=40).init(fp.FBDF2(), jnp.asarray([0.5]), 100)
    with pytest.raises(ValueError, match="tol"):
        fp.SOE(tol=0.5)


def _grad_temp_bytes(history, steps, kernel=fp.GL()):
    circuit, _, _ = fp.layered_network(fp.NetworkSpec(hidden=(1,)))
    ts = np.arange(steps + 1) * 0.05
    u = jnp.asarray(fp.multisine(2, ts, 1.0))

    def loss(alpha):
        c = circuit.set("M_h0_0", "alpha", alpha)
        v = fp.simulate(
            c,
            starting=False,  # α is differentiated: no precomputed starting weights
            dt=0.05,
            steps=steps,
            inputs={"V0": u[0], "V1": u[1]},
            history=history,
            kernel=kernel,
            throw=False,
            substeps=1,
        ).v
        return jnp.sum(v**2)

    compiled = jax.jit(jax.grad(loss)).lower(0.5).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_gradient_memory_grows_linearly_with_soe():
    # design §6: a full-history scan stores O(N) per step in reverse mode (O(N²) in all) when
    # the weights are differentiated (here w.r.t. a memristor's α); the SOE carry is O(K + L),
    # so its compiled temporary memory must grow like N.
    sizes = [256, 512, 1024]
    soe = [_grad_temp_bytes(fp.SOE(), n) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(soe), 1)[0]
    assert slope <= 1.1, (slope, soe)
    exact = [_grad_temp_bytes(fp.Exact(), n) for n in sizes]
    slope_exact = np.polyfit(np.log(sizes), np.log(exact), 1)[0]
    assert slope_exact >= 1.8, (slope_exact, exact)  # the trap SOE avoids


def test_alpha_gradient_memory_grows_linearly_with_soe_under_fbdf2():
    # The same for the second-order kernel, whose SOE modes are GL's with new coefficients.
    sizes = [256, 512, 1024]
    soe = [_grad_temp_bytes(fp.SOE(), n, fp.FBDF2()) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(soe), 1)[0]
    assert slope <= 1.1, (slope, soe)


def _conductance_grad_temp_bytes(history, steps):
    problem, u, targets = fp.regime_problem(1.0, spec=fp.NetworkSpec(hidden=(1,)), steps=steps)
    problem = problem.replace(history=history)
    compiled = (
        jax.jit(lambda p: jax.grad(problem.loss)(p, u, targets)).lower(problem.params()).compile()
    )
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("backend", BLOCKED_BACKENDS, ids=BLOCKED_IDS)
def test_blocked_backends_conductance_gradient_memory_is_linear(backend):
    # The far-field update is a conditional on the step counter; reverse mode through it
    # stored the selected branch's weight data (O(C·N)) at every step, O(C·N²) in all (slope
    # 2.0 measured before `_switch_in_place` ran under `jax.checkpoint`). With the weights
    # fixed (conductances only), nothing O(N) needs storing per step any more. Measured
    # slopes over these sizes: Dense 0.67–0.78, HLS 1.00 (benchmarks/grad_memory.py); 1.3 leaves
    # room for the fixed-size parts and still separates O(N) from O(N²).
    sizes = [256, 512, 1024]
    temps = [_conductance_grad_temp_bytes(backend, n) for n in sizes]
    slope = np.polyfit(np.log(sizes), np.log(temps), 1)[0]
    assert slope <= 1.3, (slope, temps)


# ------------------------------------------------------------------- Dense and HLS: exactness
# Both are exact to round-off: every history sum is the same finite sum as Exact's, only
# grouped differently (block matrix products, or FFT convolutions of power-of-two size), so
# they must agree with Exact to ≤ 1e-12 relative (measured ~1e-15).

MIXED_ORDERS = jnp.asarray([0.5, -0.5, 0.3, -0.3, 0.9, 1.0, -0.99, 0.05])


def _history_sums(backend, kernel, orders, xs, push_first=True):
    """``H[n]`` for n = 1 … N, driving the backend as the stepper does (x[0] pushed or not)."""
    steps = xs.shape[0] - 1

    @jax.jit
    def run(xs):
        state = backend.init(kernel, orders, steps)
        if push_first:
            state = backend.push(state, jnp.asarray(0), xs[0])

        def step(state, n):
            h = backend.history(state, n)
            return backend.push(state, n, xs[n]), h

        return jax.lax.scan(step, state, jnp.arange(1, steps + 1))[1]

    return run(xs)


def _rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("backend", [fp.Dense(block=16), fp.HLS(leaf=16)], ids=["dense", "hls"])
@pytest.mark.parametrize("steps", [5, 37, 300])  # below one block/leaf; odd; not a power of 2
def test_blocked_backends_match_exact_on_random_inputs(backend, steps):
    xs = jax.random.normal(jax.random.key(steps), (steps + 1, MIXED_ORDERS.shape[0]))
    ref = _history_sums(fp.Exact(), fp.GL(), MIXED_ORDERS, xs)
    out = _history_sums(backend, fp.GL(), MIXED_ORDERS, xs)
    assert _rel(out, ref) <= 1e-12


@pytest.mark.parametrize("backend", BLOCKED_BACKENDS, ids=BLOCKED_IDS)
def test_blocked_backends_default_sizes_other_kernel_and_empty_start(backend):
    # Default block/leaf, the FBDF2 kernel, several levels (N = 700 > 16 leaves), and no push
    # at n = 0 (the circuit stepper starts from rest and never pushes x[0]).
    steps = 700
    xs = jax.random.normal(jax.random.key(1), (steps + 1, MIXED_ORDERS.shape[0]))
    xs = xs.at[0].set(0.0)
    ref = _history_sums(fp.Exact(), fp.FBDF2(), MIXED_ORDERS, xs, push_first=False)
    out = _history_sums(backend, fp.FBDF2(), MIXED_ORDERS, xs, push_first=False)
    assert _rel(out, ref) <= 1e-12


def _fractional_rc(alpha=0.5):
    b = fp.CircuitBuilder("fractional RC")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0)
    b.cpe("P1", "out", "0", c=1.0, alpha=alpha)
    return b.build()


@pytest.mark.parametrize("name", ["dense", "hls"])
def test_blocked_backends_inside_simulate_on_a_fractional_rc(name):
    circuit, steps = _fractional_rc(0.7), 333
    exact = fp.simulate(circuit, dt=5.0 / steps, steps=steps, history="exact", substeps=1)
    out = fp.simulate(circuit, dt=5.0 / steps, steps=steps, history=name, substeps=1)
    assert _rel(out.v, exact.v) <= 1e-12


@pytest.mark.parametrize("name", ["dense", "hls"])
def test_blocked_backends_inside_simulate_on_a_memristor_network(name):
    exact, out = _run(fp.Exact()), _run(name)
    assert _rel(out.v, exact.v) <= 1e-12


def test_blocked_backends_under_vmap():
    circuit = _network()
    steps, dt = 100, 0.05
    ts = np.arange(steps + 1) * dt
    u = jnp.stack([jnp.asarray(fp.multisine(2, ts, 1.0, seed=s)) for s in range(3)])

    def run(u, history):
        inputs = {"V0": u[0], "V1": u[1]}
        return fp.simulate(
            circuit, dt=dt, steps=steps, inputs=inputs, history=history, throw=False, substeps=1
        ).v

    ref = jax.vmap(lambda u: run(u, "exact"))(u)
    for name in (fp.Dense(block=16), fp.HLS(leaf=16)):
        assert _rel(jax.vmap(lambda u, name=name: run(u, name))(u), ref) <= 1e-12
        # Lane by lane, without vmap, the same result.
        assert _rel(run(u[2], name), ref[2]) <= 1e-12


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    yield from _eqns(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    yield from _eqns(sub)


def test_hls_block_work_stays_a_real_branch_under_vmap():
    # The level is chosen from the step counter, which vmap does not batch: the 0/1-trip loops
    # that hold the FFTs must keep an unbatched trip count (a batched predicate would make JAX
    # reduce it with `reduce_or` and run the work on every lane at every step).
    circuit = _network()
    steps = 100
    u = jnp.ones((2, 2, steps + 1))

    def run(u):
        inputs = {"V0": u[0], "V1": u[1]}
        return fp.simulate(
            circuit, dt=0.05, steps=steps, inputs=inputs, history="hls", substeps=1
        ).v

    jaxpr = jax.make_jaxpr(jax.vmap(run))(u).jaxpr
    loops = [
        e
        for e in _eqns(jaxpr)
        if e.primitive.name == "while"
        and any(x.primitive.name == "fft" for x in _eqns(e.params["body_jaxpr"].jaxpr))
    ]
    assert loops
    for e in loops:
        cond_prims = {x.primitive.name for x in _eqns(e.params["cond_jaxpr"].jaxpr)}
        assert "reduce_or" not in cond_prims, cond_prims


def _memristor_loss(history, steps=80):
    circuit, _, _ = fp.layered_network(fp.NetworkSpec(hidden=(2,)))
    ts = np.arange(steps + 1) * 0.05
    u = jnp.asarray(fp.multisine(2, ts, 1.0))

    def loss(alpha, g):
        c = circuit.set("M_h0_0", "alpha", alpha)
        c = c.set("R_in0_h0_0", "g", g)
        v = fp.simulate(
            c,
            starting=False,  # α is differentiated: no precomputed starting weights
            dt=0.05,
            steps=steps,
            inputs={"V0": u[0], "V1": u[1]},
            history=history,
            throw=False,
            substeps=1,
        ).v
        return jnp.sum(v**2)

    return loss, (0.6, float(circuit.groups[0].g[0]))


@pytest.mark.parametrize(
    "name",
    [pytest.param(fp.Dense(block=16), marks=pytest.mark.slow), fp.HLS(leaf=16)],  # dense: 33 s
    ids=["dense", "hls"],
)  # 80 steps: five blocks, three FFT levels
def test_blocked_backends_gradients_match_exact(name):
    # Derivatives w.r.t. a memristor's order α (it enters the weights, so the FFT spectra and
    # the block weight rows) and a synapse conductance. Both backends compute the same sums as
    # Exact up to round-off; the adjoint sums ~N·C such terms, so allow 1e-10 relative.
    loss_exact, args = _memristor_loss("exact")
    loss, _ = _memristor_loss(name)
    ref = jax.grad(loss_exact, argnums=(0, 1))(*args)
    out = jax.grad(loss, argnums=(0, 1))(*args)
    for a, b in zip(out, ref):
        assert abs(float(a) - float(b)) <= 1e-10 * abs(float(b)), (out, ref)
    # Forward mode goes through the same derivative rule.
    tangent = jax.jvp(lambda a: loss(a, args[1]), (args[0],), (1.0,))[1]
    assert abs(float(tangent) - float(ref[0])) <= 1e-10 * abs(float(ref[0]))


# --------------------------------------------------------------------------- selection


def test_history_names_resolve_to_backends():
    gl = fp.GL()
    assert fp.resolve_history("exact", gl, 10) == fp.Exact()
    assert fp.resolve_history("DENSE", gl, 10) == fp.Dense()
    assert fp.resolve_history("hls", gl, 10) == fp.HLS()
    assert fp.resolve_history("soe", gl, 10) == fp.SOE()
    hls = fp.HLS(leaf=64)
    assert fp.resolve_history(hls, gl, 10) is hls


def test_auto_history_is_exact_for_short_runs_and_fast_for_long_ones():
    assert fp.resolve_history("auto", fp.GL(), AUTO_SOE_STEPS) == fp.Exact()
    assert fp.resolve_history("auto", fp.GL(), AUTO_SOE_STEPS + 1) == fp.SOE()
    # SOE needs a kernel that filters the GL weights (GL, FBDF2); others get the exact HLS.
    assert fp.resolve_history("auto", fp.FBDF2(), AUTO_SOE_STEPS) == fp.Exact()
    assert fp.resolve_history("auto", fp.FBDF2(), AUTO_SOE_STEPS + 1) == fp.SOE()

    class Other(fp.AbstractKernel):
        def weights(self, order, steps):
            return fp.GL().weights(order, steps)

    assert fp.resolve_history("auto", Other(), AUTO_SOE_STEPS + 1) == fp.HLS()


def test_bad_history_arguments_are_rejected_clearly():
    circuit = _fractional_rc()
    with pytest.raises(ValueError, match=r"history='fast'.*'auto', 'exact', 'dense', 'hls'"):
        fp.simulate(circuit, dt=0.01, steps=10, history="fast", substeps=1)
    with pytest.raises(TypeError, match="history=3 must be one of"):
        fp.simulate(circuit, dt=0.01, steps=10, history=3, substeps=1)
    with pytest.raises(ValueError, match="history='nope'"):
        fp.LearningProblem(circuit, inputs="V1", outputs="out", dt=0.01, steps=10, history="nope")
    with pytest.raises(ValueError, match="HLS leaf=24"):
        fp.HLS(leaf=24)
    with pytest.raises(ValueError, match="HLS leaf=512"):
        fp.HLS(leaf=512)
    with pytest.raises(ValueError, match="Dense block=3"):
        fp.Dense(block=3)


def test_learning_problem_accepts_history_names():
    circuit = _fractional_rc()
    p = fp.LearningProblem(circuit, inputs="V1", outputs="out", dt=0.01, steps=10, history="hls")
    assert p.history == fp.HLS()
    assert p.replace(history="soe").history == fp.SOE()
    # The default resolves with the problem's own number of steps.
    long = fp.LearningProblem(circuit, inputs="V1", outputs="out", dt=1e-3, steps=2000)
    assert long.history == fp.SOE()
