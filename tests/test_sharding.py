"""Batch sharding over several devices (8 fake CPU devices, set up in conftest.py).

What is exact and what is round-off:

- Placement (which rows live where) and the batch mean are exact: `sharded_estimate` gathers
  the per-example gradients and takes ``jnp.mean(axis=0)`` as on one device, so the same
  per-example values give a bitwise-equal mean (asserted).
- The per-example work runs on ``B/D`` rows per device instead of ``B`` (under `shard_map`;
  on CPU devices one row at a time, `_map_examples`). XLA's CPU reductions round differently
  for different batch sizes (on one device, ``vmap`` over 2 rows and over 16 rows already
  differ by one ulp), so end to end we assert round-off, not bitwise, norm-wise relative to
  the single-device call. On the small network below the results are bitwise on this machine
  but for Replay (6e-17). On the 2-4-1 `regime_problem` network with 2 rows per device we
  measured voltages 6e-17, Replay 1.9e-15, Autodiff 1.7e-15, EP 2.4e-11 with a GSPMD-sharded
  ``vmap``, and 6e-17, 6.6e-15, 6.1e-15, 3.6e-11 with the row-at-a-time ``shard_map`` used
  now. The bounds
  are the first set times ten (rounded up): 1e-15, 1e-14, 1e-14, 1e-10. EP's is large
  because it divides a difference of contrasts by 2β: round-off in Q is amplified by
  |Q| / |Q(β) − Q(0)| ≈ 1e4.
- Resistive (DC) networks use the same bounds: their estimators are a contrast divided by β
  (EP) or a linear solve at the operating point (Analytic, Autodiff).
"""

import contextlib
import faulthandler
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import fracprop as fp
import fracprop.resistive as rn
from fracprop._learning.sharding import (
    _batch_mean,
    batch_mesh,
    replicate,
    shard_batch,
    sharded_estimate,
    sharded_simulate,
    sharded_step,
)

DEVICES = 8
BATCH = 8


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, dtype=float)) for x in jax.tree.leaves(tree)])


def rel_err(out, ref) -> float:
    out, ref = flat(out), flat(ref)
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


@functools.cache
def data():
    """A one-neuron fractional network (memristor α = 0.5) and a batch of 8 examples."""
    spec = fp.NetworkSpec(n_in=1, hidden=(1,), n_out=1)
    circuit, inputs, outputs = fp.layered_network(spec)
    steps, dt = 12, 0.5
    problem = fp.LearningProblem(circuit, inputs=inputs, outputs=outputs, dt=dt, steps=steps)
    ts = np.arange(steps + 1) * dt
    u = jnp.asarray(fp.multisine(BATCH, ts, 0.5, seed=1))[:, None, :]
    phase = np.linspace(0.0, 1.0, BATCH)[:, None, None]
    targets = jnp.asarray(0.3 * np.sin(0.5 * ts + phase))
    return problem, u, targets


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == DEVICES, "conftest.py should provide 8 fake CPU devices"
    return batch_mesh()


def test_batch_mesh_spans_all_devices(mesh):
    assert mesh.axis_names == ("batch",)
    assert mesh.shape["batch"] == DEVICES
    assert batch_mesh(jax.devices()[:2]).shape["batch"] == 2


def test_shard_batch_and_replicate_place_arrays(mesh):
    x = jnp.arange(BATCH * 3.0).reshape(BATCH, 3)
    xs = shard_batch({"x": x, "none": None}, mesh)
    assert xs["none"] is None
    assert xs["x"].sharding.spec == P("batch")
    assert len(xs["x"].devices()) == DEVICES
    assert {s.data.shape for s in xs["x"].addressable_shards} == {(1, 3)}
    np.testing.assert_array_equal(xs["x"], x)
    r = replicate(x, mesh)
    assert r.sharding.is_fully_replicated and len(r.devices()) == DEVICES
    # Single process: process-local data is the whole batch, so both paths agree.
    xl = shard_batch(np.asarray(x), mesh, process_local=True)
    assert xl.sharding == xs["x"].sharding
    np.testing.assert_array_equal(xl, x)


def test_batch_mean_is_bitwise_the_single_device_mean(mesh):
    # Values spread over 12 orders of magnitude, so that the order of the additions shows.
    rng = np.random.default_rng(0)
    g = rng.normal(size=(16, 5)) * 10.0 ** rng.integers(-6, 6, size=(16, 5))
    g = {"a": jnp.asarray(g), "b": jnp.asarray(g[:, :2] ** 3)}
    ref = jax.tree.map(lambda x: jnp.mean(x, axis=0), g)
    # (A plain jnp.mean of the sharded array, an all-reduce, differs here by up to 5e-12.)
    out = _batch_mean(shard_batch(g, mesh), mesh)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(ref)):
        assert a.sharding.is_fully_replicated
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def test_bad_batch_size_says_what_to_change(mesh):
    problem, u, targets = data()
    msg = r"batch size 10 is not divisible by the 8 devices.*pad the batch to 16"
    with pytest.raises(ValueError, match=msg):
        shard_batch(jnp.zeros((10, 3)), mesh)
    u10 = jnp.concatenate([u, u[:2]])
    t10 = jnp.concatenate([targets, targets[:2]])
    # No padding advice for a mean: padded rows would count in it.
    mean_msg = r"batch size 10 is not divisible.*multiple of 8 \(padding would change the batch"
    with pytest.raises(ValueError, match=mean_msg):
        sharded_estimate(fp.Autodiff(), problem, problem.params(), u10, t10, mesh)
    with pytest.raises(ValueError, match=msg):
        sharded_simulate(
            problem.circuit, {"V0": u10[:, 0]}, dt=problem.dt, steps=problem.steps, mesh=mesh
        )
    with pytest.raises(ValueError, match=r"different leading \(batch\) sizes \[8, 16\]"):
        shard_batch((jnp.zeros((8,)), jnp.zeros((16,))), mesh)
    with pytest.raises(ValueError, match="needs a leading batch axis"):
        sharded_estimate(fp.Autodiff(), problem, problem.params(), u[0], targets[0], mesh)


def test_sharded_simulate_matches_the_single_device_vmap(mesh):
    problem, u, _ = data()
    feeds = {"V0": u[:, 0]}
    kw = dict(dt=problem.dt, steps=problem.steps, saveat=fp.SaveAt(currents=True))
    ref = jax.vmap(lambda f: fp.simulate(problem.circuit, inputs=f, throw=False, **kw, substeps=1))(
        feeds
    )
    out = sharded_simulate(problem.circuit, feeds, mesh=mesh, **kw)
    assert ref.ok and out.ok
    np.testing.assert_array_equal(out.newton_iterations, ref.newton_iterations)
    for field in ("v", "i_vsrc", "i_branch"):
        # 1e-15: round-off of the per-device program (module docstring).
        assert rel_err(getattr(out, field), getattr(ref, field)) <= 1e-15, field
    for x in jax.tree.leaves(out):  # every field is batched and split, one row per device
        assert x.shape[0] == BATCH and x.sharding.spec == P("batch")
        assert len(x.devices()) == DEVICES
    assert {s.data.shape for s in out.v.addressable_shards} == {(1, *ref.v.shape[1:])}

    # A failing lane is named, as simulate does under vmap.
    bad = {"V0": u[:, 0].at[5, 3:].set(jnp.nan)}
    with pytest.raises(fp.SimulationError, match="batch lane 5"):
        sharded_simulate(problem.circuit, bad, mesh=mesh, **kw)


@pytest.mark.parametrize(
    "estimator, tol",
    [(fp.Replay(), 1e-14), (fp.Autodiff(), 1e-14), (fp.EP(beta=1e-3), 1e-10)],
    ids=["Replay", "Autodiff", "EP"],
)
def test_sharded_estimate_matches_the_single_device_call(mesh, estimator, tol):
    problem, u, targets = data()
    params = problem.params()
    ref = estimator(problem, params, u, targets)
    out = sharded_estimate(estimator, problem, params, u, targets, mesh)
    assert jax.tree.structure(out) == jax.tree.structure(ref)
    assert np.any(flat(ref) != 0)
    assert rel_err(out, ref) <= tol  # tolerances and their reasons: module docstring
    for g in jax.tree.leaves(out):
        assert g.sharding.is_fully_replicated and len(g.devices()) == DEVICES


def test_sharded_training_step_matches_single_device_and_compiles_once(mesh):
    problem, u, targets = data()
    estimator = fp.Replay()

    def make(grad_fn):
        @eqx.debug.assert_max_traces(max_traces=1)
        def step(params, problem, u, t):
            g = grad_fn(problem, params, u, t)
            return jax.tree.map(lambda p, g: p - 0.1 * g, params, g), g

        return step

    sharded = sharded_step(
        make(lambda *a: sharded_estimate(estimator, *a, mesh=mesh)), batch_argnums=(2, 3), mesh=mesh
    )
    single = eqx.filter_jit(make(estimator))
    p_s = p_1 = problem.params()
    for _ in range(2):  # the second call reuses the compiled step (max_traces=1)
        p_s, g_s = sharded(p_s, problem, u, targets)
        p_1, g_1 = single(p_1, problem, u, targets)
        # Against the jitted single-device step; Replay's bound (module docstring). Measured
        # 1.9e-16 here: under jit, XLA fuses the per-device program differently.
        assert rel_err(g_s, g_1) <= 1e-14
        for g in jax.tree.leaves(g_s):
            assert g.sharding.is_fully_replicated and len(g.devices()) == DEVICES


# -- resistive (DC) networks ------------------------------------------------------------------


@contextlib.contextmanager
def no_hang(seconds: float):
    """Kill the test process with a traceback if the block runs longer than ``seconds`` (pytest
    has no timeout here; a deadlocked XLA program would otherwise block the run forever)."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@functools.cache
def diode_data(batch: int = BATCH * 2):
    """Iris with a small layered diode network (4 hidden nodes, Newton + homotopy loops)."""
    task = rn.diode_classifier("iris", hidden=(4,), seed=0)
    u, t = task.train
    return task.problem, task.params, u[:batch], t[:batch]


@pytest.mark.parametrize(
    "estimator, tol",
    [(rn.EP(beta=1e-3, symmetric=True), 1e-10), (rn.Analytic(), 1e-14), (rn.Autodiff(), 1e-14)],
    ids=["EP_symmetric", "Analytic", "Autodiff"],
)
def test_sharded_resistive_estimate_matches_the_single_device_call(mesh, estimator, tol):
    problem, params, u, t = diode_data()
    with no_hang(120):
        ref = estimator(problem, params, u, t)
        out = sharded_estimate(estimator, problem, params, u, t, mesh)
    assert np.any(flat(ref) != 0)
    # The bounds of the module docstring (EP's 1e-10: a contrast divided by 4β); measured
    # with 2 rows per device: EP 9.0e-12, Analytic and Autodiff bitwise.
    assert rel_err(out, ref) <= tol
    for g in jax.tree.leaves(out):
        assert g.sharding.is_fully_replicated and len(g.devices()) == DEVICES


@pytest.mark.slow  # 39 s on 2 cores; test_train covers sharded training
def test_sharded_resistive_training_returns_and_matches_single_device():
    # 16 hidden diode nodes, batch_size 64 = 8 rows per device, evaluations on the whole
    # train and test sets: this run deadlocked on the 8 fake CPU devices before (batched
    # LAPACK LU on every device at once; docs/multi_device.md). Tiny, and guarded.
    cfg = {
        "task": {"name": "iris", "hidden": [16]},
        "estimator": {"name": "ep_symmetric", "beta": 1e-3},
        "optimizer": {"name": "adam", "learning_rate": 0.1},
        "steps": 1,
        "batch_size": 64,
    }
    with no_hang(180):
        on = fp.train({**cfg, "shard": "on"})
        off = fp.train({**cfg, "shard": "off"})
    # EP's bound (module docstring); Adam's normalised update does not amplify a relative
    # error of the gradient. Measured: parameters 1.6e-14, losses 1.6e-15.
    assert rel_err(on.params, off.params) <= 1e-10
    keys = ("loss", "train_loss", "test_loss")
    losses = [[r[k] for r in res.history for k in keys if k in r] for res in (on, off)]
    assert len(losses[0]) == 5
    assert rel_err(losses[0], losses[1]) <= 1e-10
    for x in jax.tree.leaves(on.params):  # handed back on one device, like an unsharded run
        assert len(x.devices()) == 1
