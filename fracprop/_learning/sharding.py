r"""Data parallelism: a batch of examples split over devices, parameters replicated.

Every device holds the whole circuit and the whole parameter pytree (``PartitionSpec()``) and a
contiguous slice of the batch (``PartitionSpec("batch")``) on a one-axis `jax.sharding.Mesh`
named ``"batch"``. Simulation and estimation need no communication until the batch mean: each
example's trajectory and gradient are computed where its data lives.

The batch mean is where a naive sharded reduction would differ from the single-device result
(per-device partial sums, then a cross-device all-reduce, change the order of the additions).
`sharded_estimate` therefore gathers the per-example gradients (``B × params`` numbers, small
next to one trajectory) to every device and reduces them with the same ``jnp.mean(axis=0)`` as
`AbstractEstimator.__call__`: given the same per-example gradients, the mean is bitwise the
single-device one.

The per-example work runs under `jax.shard_map`: each device maps over its own rows
(`_map_examples`), so that a `while_loop` whose stop depends on the example (Newton, the
DC homotopy, CG) stops on each device when its own rows have converged. (A `vmap` over a
GSPMD-sharded batch compiles to an all-reduce of the loop condition in every iteration: the
compiled DC training step had six, one per Newton and homotopy loop.) On CPU devices the rows
are mapped one at a time: jaxlib 0.10's batched LAPACK kernels (the LU of `jnp.linalg.solve`
on a stack of matrices) split the stack into tasks on the CPU client's shared thread pool
and block until they finish, so several CPU devices doing so at once can leave every thread
of the pool waiting: a deadlock (seen on 8 fake devices with 8 rows and 38×38 DC Jacobians
per device, and with 105 rows and 22×22 Jacobians).

The per-example work equals the single-device work to round-off, not always bitwise: each
device runs the program on ``B/D`` rows (on CPU, one row) instead of ``B``, and XLA's CPU
reductions round differently for different batch sizes (on one device, ``vmap`` over 8 rows
and over 16 rows already differ in the last bit). Measured in float64 on 8 fake CPU devices,
norm-wise relative to the single-device call: a 1-neuron fractional network, 1 row per
device, bitwise for voltages and for the gradients of `Autodiff` and `EP`, `Replay` 6e-17; the
2-4-1 network of `regime_problem`, 2 rows per device: voltages 6e-17, `Replay` 7e-15,
`Autodiff` 6e-15, `EP` 4e-11 (EP divides a difference of contrasts by ``2β`` and amplifies
round-off accordingly); the iris diode network (4 hidden nodes), 2 rows per device:
`fracprop.resistive.Analytic` and ``Autodiff`` bitwise, symmetric ``EP`` 9e-12.

Meshes are built with `jax.make_mesh` and ``AxisType.Auto``. See ``docs/multi_device.md``
for several hosts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._circuit.circuit import Circuit
from .._transient.simulate import simulate
from .._transient.solution import SimulationError, Trajectory
from ..resistive.learning import ResistiveProblem
from .base import AbstractEstimator
from .problem import LearningProblem

#: The name of the mesh axis that the batch is split over.
BATCH_AXIS = "batch"


def batch_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh named ``"batch"`` over ``devices`` (default: every visible device).

    **Arguments**

    - ``devices``: the devices to split the batch over, e.g. ``jax.devices()[:4]``. Default
      `jax.devices()`: on several hosts (after `jax.distributed.initialize`) that is every
      device of every process.

    **Returns** a `jax.sharding.Mesh` of shape ``{"batch": len(devices)}`` with an automatic
    (``AxisType.Auto``) axis, made with `jax.make_mesh`.

    **Raises** `ValueError` if ``devices`` is empty.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("batch_mesh needs at least one device; got an empty list")
    return jax.make_mesh(
        (len(devices),), (BATCH_AXIS,), axis_types=(AxisType.Auto,), devices=devices
    )


def _batch_size(mesh: Mesh) -> int:
    if BATCH_AXIS not in mesh.axis_names:
        raise ValueError(
            f"the mesh has axes {mesh.axis_names}; it needs an axis named {BATCH_AXIS!r} "
            "(build one with batch_mesh())"
        )
    return int(mesh.shape[BATCH_AXIS])


def _place(x, sharding: NamedSharding):
    """`jax.device_put` for concrete arrays, a sharding constraint for traced ones."""
    if isinstance(x, jax.core.Tracer):
        return jax.lax.with_sharding_constraint(x, sharding)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        # An array spread over several processes: reshard with a compiled copy.
        return jax.jit(lambda y: y, out_shardings=sharding)(x)
    return jax.device_put(x, sharding)


def _check_divisible(rows: int, devices: int, what: str = "batch size", mean: bool = False):
    if rows % devices:
        up = math.ceil(rows / devices) * devices
        pad = (
            ""
            if mean
            else f"pad the batch to {up} (the next multiple of {devices}) and drop the extra "
            "rows from the results, "
        )
        raise ValueError(
            f"{what} {rows} is not divisible by the {devices} devices of the mesh's "
            f"{BATCH_AXIS!r} axis; {pad}pick a batch size that is a multiple of {devices}"
            f"{' (padding would change the batch mean)' if mean else ''}, or build the mesh "
            "over fewer devices, e.g. batch_mesh(jax.devices()[:k]) with k dividing the batch "
            "size"
        )


def shard_batch(tree: Any, mesh: Mesh | None = None, *, process_local: bool = False) -> Any:
    """Split every array leaf of ``tree`` along its leading (batch) axis over the mesh.

    Each leaf is placed as ``NamedSharding(mesh, PartitionSpec("batch"))``: device ``k`` of the
    ``"batch"`` axis holds rows ``k·B/D … (k+1)·B/D − 1``. Inside `jax.jit` the placement is a
    sharding constraint. Leaves that are not arrays (``None``, static fields) are left alone.

    **Arguments**

    - ``tree``: a pytree whose array leaves all share the leading batch size ``B``.
    - ``mesh``: a mesh with a ``"batch"`` axis (default `batch_mesh()`).
    - ``process_local``: on several hosts, the leaves hold only *this process's* rows; they are
      assembled into global arrays with `jax.make_array_from_process_local_data` (the global
      batch is the concatenation over processes, in process order).

    **Returns** ``tree`` with its array leaves sharded over the batch axis.

    **Raises** `ValueError` if a leaf has no leading axis, the leaves disagree on ``B``, or ``B``
    is not a multiple of the number of devices (with ``process_local``: of this process's
    devices on the mesh).
    """
    mesh = batch_mesh() if mesh is None else mesh
    devices = _batch_size(mesh)
    sharding = NamedSharding(mesh, P(BATCH_AXIS))
    leaves = [x for x in jax.tree.leaves(tree) if eqx.is_array(x)]
    sizes = set()
    for x in leaves:
        shape = np.shape(x)
        if len(shape) == 0:
            raise ValueError(
                "shard_batch needs a leading batch axis on every array leaf; got a scalar. "
                "Replicate parameters with replicate() instead"
            )
        sizes.add(shape[0])
    if len(sizes) > 1:
        raise ValueError(
            f"the array leaves have different leading (batch) sizes {sorted(sizes)}; every "
            "leaf given to shard_batch must have the same batch size"
        )
    if not sizes:
        return tree
    (rows,) = sizes
    if process_local:
        local = len(mesh.local_devices)
        _check_divisible(rows, local, "this process's batch size")

        def put(x):
            return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    else:
        _check_divisible(rows, devices)

        def put(x):
            return _place(x, sharding)

    return jax.tree.map(lambda x: put(x) if eqx.is_array(x) else x, tree)


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Place a full copy of every array leaf of ``tree`` on every device of the mesh.

    Used for parameters, the circuit, optimiser state and anything else that every example
    needs (``NamedSharding(mesh, PartitionSpec())``). Inside `jax.jit` the placement is a
    sharding constraint. Leaves that are not arrays are left alone.

    **Arguments**

    - ``tree``: any pytree (an `eqx.Module`, a parameter pytree, an optax state).
    - ``mesh``: the mesh (default `batch_mesh()`).

    **Returns** ``tree`` with its array leaves replicated.
    """
    mesh = batch_mesh() if mesh is None else mesh
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda x: _place(x, sharding) if eqx.is_array(x) else x, tree)


def sharded_simulate(
    circuit: Circuit,
    inputs: dict[str, Any],
    *,
    dt: float | jax.Array,
    steps: int,
    mesh: Mesh | None = None,
    throw: bool = True,
    **kwargs,
) -> Trajectory:
    """`simulate` a batch of input sets, split over the devices of the mesh.

    Computes ``jax.vmap(lambda u: simulate(circuit, inputs=u, dt=dt, steps=steps,
    throw=False, **kwargs))(inputs)``, with each device running the stepper on its own rows (no
    communication) and the circuit replicated. The result equals the single-device one to
    round-off, and often bitwise (see the module notes).

    **Arguments**

    - ``circuit``: the `Circuit` (replicated on every device).
    - ``inputs``: ``{source name: array (B, steps + 1)}``, one sampled waveform per example;
      ``B`` must be a multiple of the number of devices on the ``"batch"`` axis.
    - ``dt``, ``steps``: the time grid, as in `simulate`.
    - ``mesh``: a mesh with a ``"batch"`` axis (default `batch_mesh()`).
    - ``throw``: after the run, raise `SimulationError` naming the first failing batch lane
      (outside `jax.jit`). With ``throw=False`` read ``Trajectory.result`` per lane.
    - ``**kwargs``: any other keyword argument of `simulate` (``kernel``, ``history``,
      ``saveat``, …). The batch runs on a fixed internal grid, ``substeps=1`` unless given
      (the time-error control of `simulate` needs concrete values, not a batch under
      `jax.vmap`; ``traj.substeps`` of a controlled `simulate` of one example is a choice).

    **Returns** the batched `Trajectory`: every array field has a leading batch axis ``B`` and
    is sharded over the mesh's ``"batch"`` axis.

    **Raises** `ValueError` if ``inputs`` is empty, an input is not ``(B, steps + 1)``, the
    inputs disagree on ``B``, or ``B`` is not a multiple of the device count;
    `SimulationError` as described for ``throw``.
    """
    if not inputs:
        raise ValueError(
            "sharded_simulate needs batched inputs {source name: array (batch, steps + 1)}; "
            "for a single run use simulate()"
        )
    if "inputs" in kwargs:
        raise TypeError("pass the batched waveforms as the second argument, not inputs=")
    for name, value in inputs.items():
        shape = np.shape(value)
        if len(shape) != 2 or shape[1] != steps + 1:
            raise ValueError(
                f"inputs[{name!r}] has shape {shape}; sharded_simulate needs one row per "
                f"example, shape (batch, {steps + 1}) for steps={steps}"
            )
    mesh = batch_mesh() if mesh is None else mesh
    inputs = shard_batch(dict(inputs), mesh)

    # A fixed internal grid (time-error control needs concrete values, not a vmapped run).
    kwargs.setdefault("substeps", 1)

    # The circuit is a constant of the mapped function (replicated on every device), not an
    # argument: its fractional orders stay concrete, as the starting weights need.
    def one(_, feeds):
        return simulate(circuit, dt=dt, steps=steps, inputs=feeds, throw=False, **kwargs)

    traj = _map_examples(one, mesh, None, inputs)
    if throw and not traj.result.is_traced():
        # The status on every device (and process), so that every process can read it.
        status = replicate((traj.ts, traj.result, traj.fail_step, traj.fail_index), mesh)
        view = eqx.tree_at(lambda t: (t.ts, t.result, t.fail_step, t.fail_index), traj, status)
        if not view.ok:
            raise SimulationError(view.message())
    return traj


def sharded_estimate(
    estimator: AbstractEstimator,
    problem: LearningProblem | ResistiveProblem,
    params: Any,
    inputs: Any,
    targets: Any,
    mesh: Mesh | None = None,
) -> Any:
    r"""A batch-mean gradient estimate with the batch split over devices.

    Computes exactly what ``estimator(problem, params, inputs, targets)`` computes,

    .. math::  \hat g = m \odot \frac{1}{B} \sum_{b=0}^{B-1} \hat g^{(b)}

    (``m`` = ``problem.mask()``, ``ĝ⁽ᵇ⁾`` = ``estimator.one`` on example ``b``), with the
    examples sharded over the ``"batch"`` axis and ``params`` and ``problem`` replicated. Each
    device maps over its own rows (`jax.shard_map`), so that the devices do not communicate
    until the mean; the per-example estimates are then gathered to every device and averaged
    in the same order as on one device. The result equals the single-device call made the same
    way (both eager, or both under `jax.jit`) to round-off, and often bitwise; see the module
    notes for measured differences. (`jax.jit` itself changes the last bits against an eager
    call, on one device as on several.)

    **Arguments**

    - ``estimator``: any `AbstractEstimator` (`EP`, `Replay`, `Autodiff`, …) with its
      `LearningProblem`, or a resistive-network estimator (`fracprop.resistive.EP`,
      ``Analytic``, …) with its ``ResistiveProblem``.
    - ``problem``: the `LearningProblem` or ``ResistiveProblem``.
    - ``params``: its parameters (``problem.params()`` structure), replicated on every device.
    - ``inputs``, ``targets``: with a leading batch axis ``B``, e.g. ``(B, n_inputs, steps +
      1)`` and ``(B, n_outputs, steps + 1)`` for a `LearningProblem`, ``(B, n_inputs)`` and
      ``(B, n_outputs)`` for a ``ResistiveProblem``; ``B`` must be a multiple of the number
      of devices on the ``"batch"`` axis.
    - ``mesh``: a mesh with a ``"batch"`` axis (default `batch_mesh()`).

    **Returns** the gradient estimate (structure of ``params``), replicated on every device.

    **Raises** `ValueError` if the data have no batch axis or ``B`` is not a multiple of the
    device count; the problem's error (`LearningError`, ``ResistiveError``) for data of the
    wrong shape or parameters the estimator cannot estimate.
    """
    problem.check_estimator(estimator)
    u, t, batched = problem.check_data(inputs, targets)
    if not batched:
        raise ValueError(
            f"sharded_estimate needs a leading batch axis on the data; got inputs of shape "
            f"{u.shape}. Stack examples as (batch, {', '.join(map(str, u.shape))}), or call "
            "the estimator directly for one example"
        )
    mesh = batch_mesh() if mesh is None else mesh
    _check_divisible(u.shape[0], _batch_size(mesh), mean=True)
    problem, params = replicate((problem, params), mesh)
    u, t = shard_batch((u, t), mesh)
    per_example = _map_examples(
        lambda shared, u, t: estimator.one(*shared, u, t), mesh, (problem, params), u, t
    )
    return jax.tree.map(lambda g, m: g * m, _batch_mean(per_example, mesh), problem.mask())


def _sharded_loss_and_estimate(estimator, problem, params, inputs, targets, mesh: Mesh):
    """``(problem.loss(params, inputs, targets), estimator(problem, params, inputs, targets))``
    for a batch sharded over ``mesh`` (for use under `jax.jit`, e.g. in `sharded_step`).

    Both per-example loops run on each device's own rows (`_map_examples`); the per-example
    losses and estimates are gathered and averaged as on one device.
    """

    def per_example(shared, u, t):
        problem, params = shared
        return problem.loss(params, u, t), estimator.one(problem, params, u, t)

    losses, grads = _map_examples(per_example, mesh, (problem, params), inputs, targets)
    loss, grads = _batch_mean((losses, grads), mesh)
    return loss, jax.tree.map(lambda g, m: g * m, grads, problem.mask())


def _batch_mean(per_example: Any, mesh: Mesh) -> Any:
    """Mean over the leading axis, bitwise as on one device: gather, then ``jnp.mean``."""
    per_example = replicate(per_example, mesh)  # B × params numbers on every device
    return jax.tree.map(lambda g: jnp.mean(g, axis=0), per_example)


def _map_examples(fn: Callable, mesh: Mesh, shared: Any, *batched: Any) -> Any:
    """``vmap(lambda *rows: fn(shared, *rows))(*batched)``, each device on its own rows.

    Runs under `jax.shard_map`: the arrays of ``shared`` (circuit, problem, parameters)
    replicated, the ``batched`` leaves split over the ``"batch"`` axis, the outputs stacked
    back along it (sharded). The devices do not communicate. (A `vmap` over a batch that
    GSPMD shards instead all-reduces the condition of every `while_loop` whose stop depends on
    the example, Newton, homotopy, CG, at every iteration: every device waits for the slowest
    row anywhere.)

    On CPU devices each device maps over its rows one at a time (`jax.lax.map`) instead of
    vectorising them: jaxlib 0.10's batched LAPACK kernels (the LU of `jnp.linalg.solve` on a
    stack of matrices) split the stack into tasks on the CPU client's shared thread pool and
    block until those finish; when several CPU devices do so at once, every thread of the
    pool can end up waiting and the program deadlocks. One matrix at a time never splits.
    """
    arrays, static = eqx.partition(shared, eqx.is_array)
    cpu = mesh.devices.flat[0].platform == "cpu" and mesh.size > 1

    def local(arrays, *rows):
        s = eqx.combine(arrays, static)
        if cpu:
            return jax.lax.map(lambda r: fn(s, *r), rows)
        return jax.vmap(lambda *r: fn(s, *r))(*rows)

    spec = P(BATCH_AXIS)
    # check_vma=False: every output is per-example (split along "batch"), and a gradient
    # taken inside ``fn`` with respect to the replicated parameters must stay per-example,
    # not be summed over the devices.
    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), *(spec,) * len(batched)),
        out_specs=spec,
        check_vma=False,
    )
    return mapped(arrays, *batched)


def sharded_step(
    step: Callable, *, batch_argnums: int | Sequence[int], mesh: Mesh | None = None
) -> Callable:
    """Compile a training step that runs data-parallel over the mesh's ``"batch"`` axis.

    The returned function shards the positional arguments named by ``batch_argnums`` over the
    ``"batch"`` axis (`shard_batch`), replicates every other argument (`replicate`), runs
    ``step`` under `eqx.filter_jit`, and returns its outputs replicated. Inside ``step``, use
    `sharded_estimate` for a batch mean taken in the single-device order (a plain
    ``estimator(...)`` works too, but its mean is then an all-reduce whose order of additions
    XLA chooses).

    **Arguments**

    - ``step``: ``step(*args) -> outputs``, e.g. ``(params, opt_state, inputs, targets) ->
      (params, opt_state)``; it must be traceable by `eqx.filter_jit`.
    - ``batch_argnums``: index or indices of the arguments that carry a leading batch axis.
    - ``mesh``: a mesh with a ``"batch"`` axis (default `batch_mesh()`).

    **Returns** the wrapped step, with the signature of ``step``. It compiles once per set of
    argument shapes, like any `eqx.filter_jit` function.

    **Raises** (when called) `ValueError` from `shard_batch` for a batch size that is not a
    multiple of the device count.
    """
    mesh = batch_mesh() if mesh is None else mesh
    batch_argnums = (batch_argnums,) if isinstance(batch_argnums, int) else tuple(batch_argnums)

    @eqx.filter_jit
    def compiled(*args, **kwargs):
        return replicate(step(*args, **kwargs), mesh)

    @functools.wraps(step)
    def wrapped(*args, **kwargs):
        placed = tuple(
            shard_batch(a, mesh) if i in batch_argnums else replicate(a, mesh)
            for i, a in enumerate(args)
        )
        return compiled(*placed, **replicate(kwargs, mesh))

    return wrapped


__all__ = [
    "BATCH_AXIS",
    "batch_mesh",
    "replicate",
    "shard_batch",
    "sharded_estimate",
    "sharded_simulate",
    "sharded_step",
]
