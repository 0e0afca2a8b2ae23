"""Resistive networks at steady state: solver, implicit derivatives, estimators, bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

import fracprop as fp
import fracprop.resistive as rn
from fracprop._circuit.elements import GMIN, VT_27C

DENSE, CG = rn.DCSolver(method="dense"), rn.DCSolver(method="cg")


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def small_problem(n_nodes=30, n_edges=80, diodes=False, solver=DENSE, seed=0, outputs=None):
    rng = np.random.default_rng(seed)
    edges = rn.random_edges(n_nodes, n_edges, rng)
    d = np.array([[5, 0], [0, 6], [7, 8], [9, 0], [0, 9]]) if diodes else None
    net = rn.ResistiveNetwork(n_nodes, edges, rng.uniform(0.5, 2, n_edges), [1, 2, 3], diodes=d)
    outputs = [10, (11, 12), 13] if outputs is None else outputs
    problem = rn.ResistiveProblem(net, outputs, solver=solver)
    amp = 3.0 if diodes else 1.0  # diodes need volts across them to be nonlinear
    u = jnp.asarray(rng.uniform(-amp, amp, (4, 3)))
    t = jnp.asarray(rng.uniform(-0.3, 0.3, (4, problem.n_outputs)))
    return problem, u, t


@eqx.filter_jit
def estimate(est, problem, params, u, t):
    return est(problem, params, u, t)["g"]


# ------------------------------------------------------------------------------------ solver
@pytest.mark.parametrize("diodes", [False, True])
def test_cg_equals_dense(diodes):
    problem, u, _ = small_problem(diodes=diodes)
    vd = jax.vmap(lambda u: rn.dc_solve(problem.network, u, solver=DENSE))(u)
    vc = jax.vmap(lambda u: rn.dc_solve(problem.network, u, solver=CG))(u)
    # CG stops at relative residual 1e-12, Newton at 1e-10·|v|; both far below this bound.
    assert rel(vc, vd) <= 1e-9


def test_linear_solution_satisfies_kcl():
    problem, u, _ = small_problem()
    net = problem.network
    v = np.asarray(rn.dc_solve(net, u[0]))
    e, g = np.asarray(net.edges), np.asarray(net.g)
    i = g * (v[e[:, 0]] - v[e[:, 1]])
    kcl = np.zeros(net.n_nodes)
    np.add.at(kcl, e[:, 0], i)
    np.add.at(kcl, e[:, 1], -i)
    assert np.allclose(v[list(net.inputs)], u[0])
    assert np.max(np.abs(kcl[net.free_nodes()])) <= 1e-12 * np.max(np.abs(i))


@pytest.mark.parametrize("volts", [0.3, 0.7, 5.0, 100.0])
def test_diode_series_resistor_known_case(volts):
    """V — R — D — ground: g (V − v) = IS (exp(v/(N Vt)) − 1) + gmin v, solved by brentq."""
    g, is_, n = 1e-3, 1e-14, 1.5
    net = rn.ResistiveNetwork(3, [(1, 2)], [g], inputs=[1], diodes=[(2, 0)], is_=is_, n=n)

    def f(v):
        return g * (volts - v) - is_ * np.expm1(v / (n * VT_27C)) - GMIN * v

    # The root lies below 1.5 V for every case here (f(1.5) < 0), so expm1 cannot overflow.
    ref = brentq(f, 0.0, min(volts, 1.5), xtol=1e-15, rtol=1e-15)
    for solver in (DENSE, CG):
        v = rn.dc_solve(net, jnp.asarray([volts]), solver=solver)
        assert abs(float(v[2]) - ref) <= 1e-9 * abs(ref)


def test_homotopy_rescues_newton():
    """With 5 Newton iterations per stage, Newton from zero fails at 100 V (it needs 8 with
    junction limiting); source stepping in 0.05 V steps reaches the same solution."""
    net = rn.ResistiveNetwork(3, [(1, 2)], [1.0], inputs=[1], diodes=[(2, 0)])
    u = jnp.asarray([100.0])
    ref = rn.dc_solve(net, u, solver=DENSE)
    no_steps = rn.DCSolver(method="dense", max_newton=5, source_steps=(1.0,))
    with pytest.raises(Exception, match=r"source stepping failed at stage 1/1"):
        rn.dc_solve(net, u, solver=no_steps)
    steps = tuple(float(x) for x in np.linspace(0, 1, 2001)[1:])
    stepped = rn.DCSolver(method="dense", max_newton=5, source_steps=steps)
    assert abs(float(rn.dc_solve(net, u, solver=stepped)[2] - ref[2])) <= 1e-9


def test_nonconvergence_names_the_stage():
    net = rn.ResistiveNetwork(3, [(1, 2)], [1.0], inputs=[1], diodes=[(2, 0)])
    hopeless = rn.DCSolver(method="dense", max_newton=1)
    with pytest.raises(Exception, match=r"source stepping failed at stage 1/10"):
        rn.dc_solve(net, jnp.asarray([100.0]), solver=hopeless)
    v = rn.dc_solve(net, jnp.asarray([100.0]), solver=hopeless, throw=False)
    assert np.all(np.isnan(np.asarray(v)[2:]))


# ---------------------------------------------------------------------- implicit derivatives
@pytest.mark.parametrize("diodes", [False, True])
@pytest.mark.parametrize("solver", [DENSE, CG], ids=["dense", "cg"])
def test_implicit_derivative_matches_finite_differences(diodes, solver):
    problem, u, t = small_problem(diodes=diodes, solver=solver)
    p = problem.params()
    loss = jax.jit(lambda g, u: problem.loss({"g": g}, u, t))
    grad_g, grad_u = jax.jit(jax.grad(loss, argnums=(0, 1)))(p["g"], u)
    # Central differences: truncation O(h²·J''') and round-off O(eps·J/h) both ≲ 1e-9 here.
    h = 1e-5
    for k in range(0, problem.network.n_edges, 7):
        d = jnp.zeros_like(p["g"]).at[k].set(h)
        fd = (loss(p["g"] + d, u) - loss(p["g"] - d, u)) / (2 * h)
        assert abs(float(fd - grad_g[k])) <= 1e-6 * float(jnp.max(jnp.abs(grad_g)))
    d = jnp.zeros_like(u).at[1, 2].set(h)
    fd = (loss(p["g"], u + d) - loss(p["g"], u - d)) / (2 * h)
    assert abs(float(fd - grad_u[1, 2])) <= 1e-6 * float(jnp.max(jnp.abs(grad_u)))
    # Forward mode through the same custom JVP agrees with reverse mode.
    tangent = jnp.asarray(np.random.default_rng(1).normal(size=p["g"].shape))
    _, jvp = jax.jvp(lambda g: loss(g, u), (p["g"],), (tangent,))
    assert abs(float(jvp - grad_g @ tangent)) <= 1e-10 * float(jnp.abs(grad_g) @ jnp.abs(tangent))


@pytest.mark.parametrize("n_edges", [100, 1000, 10_000])
def test_analytic_equals_grad_linear(n_edges):
    n_nodes = max(n_edges // 4, 20)
    net = rn.random_network(n_nodes, n_edges, n_inputs=3, seed=n_edges)
    outputs = [n_nodes - 1, (n_nodes - 2, n_nodes - 3)]
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.uniform(-1, 1, (3, 3)))
    t = jnp.asarray(rng.uniform(-0.1, 0.1, (3, 2)))
    # The reference is jax.grad through the dense solve; the analytic gradient uses CG above
    # 1000 edges (different arithmetic, agreement limited by CG's 1e-12 relative residual).
    ref_problem = rn.ResistiveProblem(net, outputs, solver=DENSE)
    problem = rn.ResistiveProblem(net, outputs)
    ref = estimate(rn.Autodiff(), ref_problem, ref_problem.params(), u, t)
    ana = estimate(rn.Analytic(), problem, problem.params(), u, t)
    assert rel(ana, ref) <= 1e-9


def test_analytic_equals_grad_diodes():
    problem, u, t = small_problem(diodes=True)
    p = problem.params()
    ref = estimate(rn.Autodiff(), problem, p, u, t)
    assert rel(estimate(rn.Analytic(), problem, p, u, t), ref) <= 1e-9


# ---------------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("diodes", [False, True])
def test_ep_limit_equals_analytic(diodes):
    problem, u, t = small_problem(diodes=diodes)
    p = problem.params()
    ana = estimate(rn.Analytic(), problem, p, u, t)
    assert rel(estimate(rn.EP(limit=True), problem, p, u, t), ana) <= 1e-10


@pytest.mark.parametrize(
    "diodes",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # diodes: ~20 s of compiling
)
def test_ep_error_orders(diodes):
    """One-sided EP error shrinks like β, symmetric like β² (against the exact gradient)."""
    problem, u, t = small_problem(diodes=diodes)
    p = problem.params()
    ref = estimate(rn.Analytic(), problem, p, u, t)
    betas = [4e-2, 2e-2, 1e-2]
    for symmetric, order in ((False, 1.0), (True, 2.0)):
        # β as a JAX scalar: one compilation serves every β.
        errs = [
            rel(estimate(rn.EP(jnp.asarray(b), symmetric=symmetric), problem, p, u, t), ref)
            for b in betas
        ]
        slopes = np.diff(np.log(errs)) / np.diff(np.log(betas))
        assert np.all(np.abs(slopes - order) <= 0.1), (symmetric, errs, slopes)


def test_coupled_learning_limit_and_preconditioner():
    """CL → its η → 0 limit at O(η); the limit is the gradient with the error e replaced by
    R⁻¹e (R = S K⁻¹ Sᵀ, the outputs' transfer resistance), checked through `Analytic` with
    shifted targets."""
    problem, u, t = small_problem()
    p = problem.params()
    lim = estimate(rn.CoupledLearning(limit=True), problem, p, u, t)
    etas = [4e-2, 2e-2, 1e-2]
    errs = [rel(estimate(rn.CoupledLearning(jnp.asarray(e)), problem, p, u, t), lim) for e in etas]
    slopes = np.diff(np.log(errs)) / np.diff(np.log(etas))
    assert np.all(np.abs(slopes - 1.0) <= 0.1), (errs, slopes)
    # R by dense linear algebra, independent of the solver.
    net = problem.network
    free = net.free_nodes()
    pos = {int(k): i for i, k in enumerate(free)}
    e, g = np.asarray(net.edges), np.asarray(net.g)
    lap = np.zeros((net.n_nodes, net.n_nodes))
    for (a, b), w in zip(e, g):
        lap[a, a] += w
        lap[b, b] += w
        lap[a, b] -= w
        lap[b, a] -= w
    k = lap[np.ix_(free, free)]
    s = np.zeros((problem.n_outputs, len(free)))
    for r, (a, b) in enumerate(zip(problem.plus, problem.minus)):
        s[r, pos[a]] += 1.0
        if b != 0:
            s[r, pos[b]] -= 1.0
    r_mat = s @ np.linalg.solve(k, s.T)
    y = np.asarray(problem.predict(p, u))
    shifted = y - np.linalg.solve(r_mat, (y - np.asarray(t)).T).T
    ref = estimate(rn.Analytic(), problem, p, u, jnp.asarray(shifted))
    assert rel(lim, ref) <= 1e-9


@pytest.mark.parametrize("diodes", [False, True])
def test_clamped_state_cg_equals_dense(diodes):
    """The bordered (clamped) solve: CG with its Schur complement agrees with dense."""
    problem, u, t = small_problem(diodes=diodes)
    cg = rn.ResistiveProblem(problem.network, [10, (11, 12), 13], solver=CG)
    p = problem.params()
    est = rn.CoupledLearning(0.1)
    assert rel(estimate(est, cg, p, u, t), estimate(est, problem, p, u, t)) <= 1e-8


def test_coupled_learning_single_output_is_scaled_gradient():
    """One output: the η → 0 limit of coupled learning is the gradient divided by the
    output's driving-point resistance R = S K⁻¹ Sᵀ (a positive scalar), so its direction is
    the gradient's. R is measured by injecting 1 A at the output."""
    problem, u, t = small_problem(outputs=[(11, 12)])
    p = problem.params()
    u1, t1 = u[0], t[0]
    lim = estimate(rn.CoupledLearning(limit=True), problem, p, u1, t1)
    grad = estimate(rn.Autodiff(), problem, p, u1, t1)
    # Driving-point resistance: add a 1 A source between the output pair (linear network,
    # inputs shorted) via the nudge with β → the response of y to the injected current.
    net = problem.network
    pair = rn.ResistiveProblem(net, [(11, 12)], solver=DENSE)
    zero = jnp.zeros(3)
    # F = E + β·½(y − T)²: at β → 0 the output moves by −β R (y − T); with y = 0 (inputs
    # shorted) and T = 1, dy/dβ = R.
    dy = jax.jvp(
        lambda b: pair.readout(pair.state(p, zero, beta=b, target=jnp.ones(1)), zero),
        (jnp.asarray(0.0),),
        (jnp.asarray(1.0),),
    )[1]
    r = float(dy[0])
    assert r > 0
    assert rel(lim, grad / r) <= 1e-9


def test_symmetric_coupled_learning_exact_on_linear_networks():
    """On a linear network the clamped state is affine in η, so Q is quadratic and the
    symmetric quotient equals the limit (up to round-off)."""
    problem, u, t = small_problem()
    p = problem.params()
    lim = estimate(rn.CoupledLearning(limit=True), problem, p, u, t)
    assert rel(estimate(rn.CoupledLearning(0.05, symmetric=True), problem, p, u, t), lim) <= 1e-9


def test_batch_is_mean_and_mask():
    problem, u, t = small_problem()
    p = problem.params()
    batch = estimate(rn.Analytic(), problem, p, u, t)
    singles = np.mean([estimate(rn.Analytic(), problem, p, u[i], t[i]) for i in range(4)], 0)
    assert rel(batch, singles) <= 1e-12
    assert (
        abs(
            float(problem.loss(p, u, t))
            - np.mean([float(problem.loss(p, u[i], t[i])) for i in range(4)])
        )
        <= 1e-14
    )
    m = problem.mask(fraction=0.25, seed=3)["g"]
    assert set(np.unique(np.asarray(m))) <= {0.0, 1.0}
    assert int(m.sum()) == round(0.25 * problem.network.n_edges)
    assert not np.array_equal(np.asarray(m), np.asarray(problem.mask(fraction=0.25, seed=4)["g"]))
    part = rn.ResistiveProblem(
        problem.network, [10, (11, 12), 13], trainable=np.arange(10), solver=DENSE
    )
    g = estimate(rn.Analytic(), part, p, u, t)
    assert np.all(np.asarray(g)[10:] == 0) and np.allclose(g[:10], batch[:10], rtol=1e-12)
    sub = part.mask(fraction=0.5, seed=0)["g"]
    assert int(sub.sum()) == 5 and np.all(np.asarray(sub)[10:] == 0)


# ---------------------------------------------------------------------------------- bad input
def test_disconnected_component_is_named():
    edges = [(1, 2), (2, 0), (3, 4)]  # nodes 3, 4 float
    with pytest.raises(rn.ResistiveError, match=r"nodes 3, 4 have no conducting path"):
        rn.ResistiveNetwork(5, edges, [1.0, 1.0, 1.0], inputs=[1])


def test_input_grounds_a_component():
    net = rn.ResistiveNetwork(5, [(1, 2), (2, 0), (3, 4)], [1.0, 1.0, 1.0], inputs=[1, 3])
    assert net.n_free == 2


@pytest.mark.parametrize("bad", [0.0, -0.5, np.nan])
def test_non_positive_conductance(bad):
    with pytest.raises(rn.ResistiveError, match=r"g\[1\] = .* must be a positive"):
        rn.ResistiveNetwork(3, [(1, 2), (2, 0)], [1.0, bad], inputs=[1])


def test_bad_strength():
    with pytest.raises(rn.ResistiveError, match=r"EP beta=-0.1 must be a positive"):
        rn.EP(-0.1)
    with pytest.raises(rn.ResistiveError, match=r"CoupledLearning eta=0.0 must be a positive"):
        rn.CoupledLearning(0.0)
    with pytest.raises(rn.ResistiveError, match=r"strength=-0.1 must be a positive"):
        rn.GeneralizedEP("nudge", -0.1)
    with pytest.raises(rn.ResistiveError, match=r"perturbation='push'"):
        rn.GeneralizedEP("push")


def test_bad_nodes():
    with pytest.raises(rn.ResistiveError, match=r"edges\[1\] = \(2, 7\) names a node outside"):
        rn.ResistiveNetwork(3, [(1, 2), (2, 7)], [1.0, 1.0], inputs=[1])
    with pytest.raises(rn.ResistiveError, match=r"input node 0 is ground"):
        rn.ResistiveNetwork(3, [(1, 2), (2, 0)], [1.0, 1.0], inputs=[0])
    net = rn.ResistiveNetwork(3, [(1, 2), (2, 0)], [1.0, 1.0], inputs=[1])
    with pytest.raises(rn.ResistiveError, match=r"output node 9 .* is not in the graph"):
        rn.ResistiveProblem(net, [2, 9])
    with pytest.raises(rn.ResistiveError, match=r"output node 1 .* is an input node"):
        rn.ResistiveProblem(net, [(2, 1)])
    problem = rn.ResistiveProblem(net, [2])
    with pytest.raises(rn.ResistiveError, match=r"inputs have shape \(2,\)"):
        problem.loss(problem.params(), jnp.ones(2), jnp.ones(1))


# ------------------------------------------------------------------------------------ builders
def test_builders_shapes():
    task = rn.allostery()
    assert task.train[0].shape == (1, 2) and task.train[1].shape == (1, 2)
    task = rn.linear_regression(n_train=8, n_test=5)
    assert task.train[0].shape == (8, 6) and task.test[1].shape == (5, 2)
    task = rn.iris()
    assert task.train[0].shape == (105, 10) and task.test[1].shape == (45, 3)
    assert task.labels[0].shape == (105,)
    task = rn.diode_classifier("digits", hidden=(16,))
    assert task.problem.network.n_diodes == 32 and task.train[1].shape[1] == 10


@pytest.mark.slow
def test_iris_trains_with_analytic_gradient():
    """Plain gradient descent on the analytic gradient lowers the loss on iris (linear)."""
    task = rn.iris()
    problem, p = task.problem, task.params
    x, y = task.train
    step = jax.jit(
        lambda p: problem.clip(
            jax.tree.map(lambda a, b: a - 5.0 * b, p, rn.Analytic()(problem, p, x, y)), 1e-3
        )
    )
    before = float(problem.loss(p, x, y))
    for _ in range(100):
        p = step(p)
    assert float(problem.loss(p, x, y)) < 0.5 * before


# ------------------------------------------------------------ networks written as netlists
_DECK = """diode divider
V1 in 0 2
V2 0 ref 0.5
R1 in mid 1k
R2 mid ref 2k
D1 mid out DM
R3 out 0 10k
.model DM D(IS=1e-14 N=1.5)
.end
"""


def test_network_from_netlist_matches_the_circuit_operating_point():
    net = rn.ResistiveNetwork.from_netlist(_DECK)
    assert net.node_names == ("0", "in", "ref", "mid", "out")
    assert net.inputs == (net.node("in"), net.node("ref"))
    assert net.input_values == (2.0, -0.5)  # V2's + terminal is ground
    v = rn.dc_solve(net, jnp.asarray(net.input_values))
    circuit = fp.parse_netlist(_DECK).circuit
    x, ok, _ = fp.dc_operating_point(circuit, jnp.zeros(()))
    assert bool(ok)
    for k, name in enumerate(circuit.node_names):
        np.testing.assert_allclose(float(v[net.node(name)]), float(x[k]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "card, message",
    [
        ("C1 mid 0 1u", "C1 is a capacitor"),
        ("I1 mid 0 1m", "I1 is a current source"),
        ("V3 mid out 1", "V3 connects two nodes"),
    ],
)
def test_network_from_netlist_refuses_other_elements(card, message):
    deck = _DECK.replace(".model", card + "\n.model")
    with pytest.raises(rn.ResistiveError, match=message):
        rn.ResistiveNetwork.from_netlist(deck)
