r"""Transient analysis: modified nodal analysis, one implicit Newton solve per step, `lax.scan`.

Unknowns at step ``n`` are the node voltages and the currents of the voltage sources
(modified nodal analysis). Every two-terminal element contributes a branch current
``i_b(v_b)`` that depends on its branch voltage and its own history; Kirchhoff's current law
at every node and the source equations ``v[a] − v[b] = E(t_n)`` form the nonlinear system

.. math::  F(x_n) = \begin{pmatrix} A^\top i(A v_n) + B\, i_V + A_I^\top I(t_n) \\
                     B^\top v_n - E(t_n) \end{pmatrix} = 0,

solved by Newton's method with SPICE's junction limiting. The Jacobian is stamped from the
incremental conductances ``di_b/dv_b``.

Differentiation: the Newton iteration runs on stopped gradients; its converged value ``x*``
carries a custom JVP, ``ẋ = −J(x*)^{-1} ∂F/∂θ · θ̇``: exactly the implicit-function-theorem
derivative, at no cost when no derivative is taken. So `jax.grad`, `jax.jacfwd` and `jax.vmap`
all work without differentiating through the loop.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._circuit import Circuit, check_dc_loops
from ._custom_types import Array
from ._elements import CPEs, Memristors, StepSetup, shared_order_mismatch, tree_dtype_cast
from ._history import AbstractHistory, resolve_history
from ._kernels import GL, AbstractKernel
from ._progress import AbstractProgress, NoProgress


class RESULTS:
    """Status codes of a `Trajectory`."""

    successful = 0
    newton_failed = 1
    nonfinite = 2
    dc_failed = 3

    messages = {
        0: "successful",
        1: "Newton's method did not converge at t={t:.6g} s (step {step}) on {where}; "
        "reduce dt, or raise max_newton (now {max_newton})",
        2: "the state became non-finite at t={t:.6g} s (step {step}) on {where}; "
        "reduce dt, or check for a parameter that makes the circuit unstable",
        3: "the DC operating point did not converge (largest update on {where}); "
        "use uic=True to start from rest, or add a resistor to ground at that node",
    }


class SimulationError(RuntimeError):
    """Raised by `simulate` with ``throw=True`` when the run did not succeed."""


class Trajectory(eqx.Module):
    """The result of `simulate`.

    **Fields**

    - ``ts``: times ``t_n = n·dt``, shape ``(steps + 1,)``, ``t = 0`` included.
    - ``v``: node voltages, shape ``(steps + 1, nodes)``; column ``k`` is ``node_names[k]``.
    - ``i_vsrc``: currents of the voltage sources (SPICE sign: into the ``+`` node).
    - ``i_branch``: branch currents ``(steps + 1, branches)`` in ``branch_names`` order, or
      ``None`` unless ``save_currents=True``.
    - ``g_branch``: incremental conductances ``∂i_b[n]/∂v_b[n]`` of every branch at the
      converged point (``save_conductances=True``; row 0 is zero), the local record of the
      time-reversed replay.
    - ``accumulated``: the state of an online accumulator, if one was given.
    - ``newton_iterations``: Newton iterations per step (only the maximum, shape ``(1,)``, when
      ``save_states=False``).
    - ``result``: a `RESULTS` code; ``fail_step`` and ``fail_index`` locate the first failure.
    """

    ts: Array
    v: Array
    i_vsrc: Array
    i_branch: Array | None
    i_isrc: Array | None
    g_branch: Array | None
    accumulated: Any
    result: Array
    fail_step: Array
    fail_index: Array
    newton_iterations: Array
    node_names: tuple[str, ...] = eqx.field(static=True)
    vsource_names: tuple[str, ...] = eqx.field(static=True)
    branch_names: tuple[str, ...] = eqx.field(static=True)
    max_newton: int = eqx.field(static=True)

    def node(self, name: str) -> Array:
        """Voltage trace of one node (ground gives zeros)."""
        key = name.lower()
        if key in ("0", "gnd"):
            return jnp.zeros_like(self.ts)
        if key not in self.node_names:
            raise KeyError(f"unknown node {name!r}; nodes are {', '.join(self.node_names)}")
        return self.v[..., self.node_names.index(key)]

    @property
    def ok(self) -> bool:
        return bool(jnp.all(self.result == RESULTS.successful))

    def _where(self, index: int) -> str:
        n = len(self.node_names)
        if index < n:
            return f"node {self.node_names[index]!r}"
        k = index - n
        if k < len(self.vsource_names):
            return f"the current of {self.vsource_names[k]}"
        return f"unknown {index}"

    def message(self) -> str:
        """A readable account of the status (first failing lane under `vmap`)."""
        result = np.asarray(self.result).reshape(-1)
        bad = np.nonzero(result != RESULTS.successful)[0]
        if bad.size == 0:
            return RESULTS.messages[0]
        lane = int(bad[0])
        code = int(result[lane])
        step = int(np.asarray(self.fail_step).reshape(-1)[lane])
        index = int(np.asarray(self.fail_index).reshape(-1)[lane])
        ts = np.asarray(self.ts)
        if ts.ndim > 1:
            ts = ts.reshape(-1, ts.shape[-1])[lane]
        t = float(ts[min(step, ts.shape[0] - 1)])
        text = RESULTS.messages[code].format(
            t=t, step=step, where=self._where(index), max_newton=self.max_newton
        )
        if result.size > 1:
            text = f"batch lane {lane}: {text}"
        return text


def _stop(tree):
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, tree)


class _MNA(eqx.Module):
    """Static incidence structure of one linear system layout."""

    n_nodes: int = eqx.field(static=True)
    a: tuple[int, ...] = eqx.field(static=True)  # branch + node (ground = n_nodes)
    b: tuple[int, ...] = eqx.field(static=True)
    va: tuple[int, ...] = eqx.field(static=True)  # voltage-defined branches (V sources, …)
    vb: tuple[int, ...] = eqx.field(static=True)
    ia: tuple[int, ...] = eqx.field(static=True)  # current sources
    ib: tuple[int, ...] = eqx.field(static=True)

    @classmethod
    def from_pairs(cls, n_nodes: int, branches, voltage_branches, current_sources) -> _MNA:
        """Layout from ``(a, b)`` node pairs (ground ``-1``) of the three kinds of branch."""

        def split(pairs):
            pairs = [tuple(n_nodes if k < 0 else int(k) for k in p) for p in pairs]
            return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

        return cls(n_nodes, *split(branches), *split(voltage_branches), *split(current_sources))

    @property
    def size(self) -> int:
        return self.n_nodes + len(self.va)

    def branch_voltages(self, x):
        v = jnp.concatenate([x[: self.n_nodes], jnp.zeros((1,), x.dtype)])
        return v[np.asarray(self.a, dtype=np.int32)] - v[np.asarray(self.b, dtype=np.int32)]

    def residual(self, x, i_b, e, i_src):
        """KCL rows (currents leaving each node) and voltage-branch rows."""
        n = self.n_nodes
        a, b = np.asarray(self.a, np.int32), np.asarray(self.b, np.int32)
        va, vb = np.asarray(self.va, np.int32), np.asarray(self.vb, np.int32)
        ia, ib = np.asarray(self.ia, np.int32), np.asarray(self.ib, np.int32)
        i_v = x[n:]
        kcl = jnp.zeros((n + 1,), x.dtype)
        kcl = kcl.at[a].add(i_b).at[b].add(-i_b)
        kcl = kcl.at[va].add(i_v).at[vb].add(-i_v)
        kcl = kcl.at[ia].add(i_src).at[ib].add(-i_src)
        v = jnp.concatenate([x[:n], jnp.zeros((1,), x.dtype)])
        return jnp.concatenate([kcl[:n], v[va] - v[vb] - e])

    def jacobian(self, g_b, dtype):
        n, m = self.n_nodes, len(self.va)
        a, b = np.asarray(self.a, np.int32), np.asarray(self.b, np.int32)
        va, vb = np.asarray(self.va, np.int32), np.asarray(self.vb, np.int32)
        size = n + 1 + m
        j = jnp.zeros((size, size), dtype)
        j = j.at[a, a].add(g_b).at[a, b].add(-g_b).at[b, a].add(-g_b).at[b, b].add(g_b)
        cols = n + 1 + np.arange(m, dtype=np.int32)
        ones = jnp.ones((m,), dtype)
        j = j.at[va, cols].add(ones).at[vb, cols].add(-ones)
        j = j.at[cols, va].add(ones).at[cols, vb].add(-ones)
        keep = np.concatenate([np.arange(n), n + 1 + np.arange(m)]).astype(np.int32)
        return j[keep][:, keep]

    def grounded_sources(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(k, p, sign)``: voltage branches ``k`` from node ``p`` to ground (``sign = +1``)
        or from ground to ``p`` (``−1``) that are the only voltage branch at ``p``."""
        n = self.n_nodes
        touched = np.bincount(np.asarray(self.va + self.vb, np.int64), minlength=n + 1)
        ks, ps, signs = [], [], []
        for k, (a, b) in enumerate(zip(self.va, self.vb)):
            p, sign = (a, 1.0) if b == n else (b, -1.0)
            if (a == n) != (b == n) and touched[p] == 1:
                ks.append(k)
                ps.append(p)
                signs.append(sign)
        return np.asarray(ks, np.int32), np.asarray(ps, np.int32), np.asarray(signs, np.float64)

    def solve(self, g_b, f):
        r"""``J⁻¹ f`` for the Jacobian ``J`` of branch conductances ``g_b`` (`jacobian`).

        A voltage source ``k`` from node ``p`` to ground is eliminated exactly. Its row reads
        ``s·dx_p = f_c`` (``s = ±1`` its orientation, ``c = n + k``) and its current appears
        only in the KCL row of ``p``, ``Σ_j J_{pj} dx_j + s·dx_c = f_p``. So

        .. math::  dx_p = s f_c, \qquad J_{FF}\, dx_F = f_F - J_{FP}\, dx_P, \qquad
                   dx_c = s\,(f_p - Σ_{j ∉ C} J_{pj}\, dx_j),

        with ``F`` the other unknowns: one LU of the smaller ``J_FF`` (68 × 68 instead of
        100 × 100 on the benchmark network, whose 16 inputs are grounded sources), with the
        same solution up to round-off.
        """
        jac = self.jacobian(g_b, f.dtype)
        k, p, sign = self.grounded_sources()
        if k.size == 0:
            return jnp.linalg.solve(jac, f)
        c = self.n_nodes + k
        free = np.setdiff1d(np.arange(self.size), np.concatenate([p, c])).astype(np.int32)
        sign = jnp.asarray(sign, f.dtype)
        dx_p = sign * f[c]
        dx_f = jnp.linalg.solve(jac[np.ix_(free, free)], f[free] - jac[np.ix_(free, p)] @ dx_p)
        dx_c = sign * (f[p] - jac[np.ix_(p, free)] @ dx_f - jac[np.ix_(p, p)] @ dx_p)
        # Back to the unknowns' order by a gather (which reverse mode can transpose).
        inverse = np.argsort(np.concatenate([free, p, c]))
        return jnp.concatenate([dx_f, dx_p, dx_c])[inverse]


def _newton(
    mna: _MNA,
    currents,
    limit,
    x0: Array,
    e: Array,
    i_src: Array,
    *,
    max_iter: int,
    rtol: float,
    atol: float,
    linear: bool = False,
):
    """Newton's method with per-branch limiting. Returns (x, converged, iterations, worst).

    With ``linear=True`` (every branch current affine in its voltage, so the residual is
    affine in ``x`` and the Jacobian constant) the first update solves the system exactly, up
    to round-off: it is the only one taken, instead of a second that would confirm it.
    """

    def cond(carry):
        k, _, _, done, _ = carry
        return (k < max_iter) & ~done

    def body(carry):
        k, x, vlim, _, _ = carry
        vb_raw = mna.branch_voltages(x)
        v_use = limit(vb_raw, vlim)
        i, g = jax.jvp(currents, (v_use,), (jnp.ones_like(v_use),))
        # Companion model: the tangent at the limited voltage, evaluated at the true voltage.
        f = mna.residual(x, i + g * (vb_raw - v_use), e, i_src)
        dx = mna.solve(g, f)
        x_new = x - dx
        scale = rtol * jnp.maximum(jnp.abs(x_new), jnp.abs(x)) + atol
        small = jnp.all(jnp.abs(dx) <= scale)
        unlimited = jnp.all(jnp.abs(vb_raw - v_use) <= rtol * jnp.abs(vb_raw) + atol)
        done = small & unlimited & jnp.all(jnp.isfinite(x_new))
        # Report the node voltage that moved most (relative to its tolerance).
        ratio = jnp.abs(dx) / scale
        worst = jnp.argmax(jnp.where(jnp.isfinite(ratio), ratio, jnp.inf)[: mna.n_nodes])
        return k + 1, x_new, v_use, done, worst

    vlim0 = mna.branch_voltages(x0)
    init = (jnp.asarray(0), x0, vlim0, jnp.asarray(False), jnp.asarray(0))
    if linear:
        k, x, _, _, worst = body(init)
        return x, jnp.all(jnp.isfinite(x)), k, worst
    k, x, _, done, worst = jax.lax.while_loop(cond, body, init)
    return x, done, k, worst


def _implicit_step(mna: _MNA, currents, x_star, e, i_src):
    """One differentiable Newton step at the converged point (implicit function theorem)."""
    vb = mna.branch_voltages(x_star)
    i, g = jax.jvp(currents, (vb,), (jnp.ones_like(vb),))
    f = mna.residual(x_star, i, e, i_src)
    return x_star - mna.solve(g, f)


def _branch_limit(groups, v_new, v_old):
    """Newton voltage limiting of every branch (identity except for junctions)."""
    parts = zip(groups, _split(groups, v_new), _split(groups, v_old))
    return _concat([g.limit(a, b) for g, a, b in parts], v_new.dtype)


def _branch_currents(circuit, pres, setup, vb):
    """Every branch current of the transient step for branch voltages ``vb``."""
    gs = circuit.groups
    parts = zip(gs, _split(gs, vb), pres)
    return _concat([g.current(v, p, setup) for g, v, p in parts], vb.dtype)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _converged(mna: _MNA, x_star, ctx):
    """The converged Newton solution, with the implicit-function-theorem derivative.

    The value is ``x_star`` itself (no extra solve). The tangent is
    ``−J(x*)^{-1} ∂F/∂ctx · ctx'`` where ``ctx = (circuit, history, setup, E(t), I(t))``
    holds everything the step's residual depends on besides ``x``.
    """
    return x_star


@_converged.defjvp
def _converged_jvp(mna, primals, tangents):
    x_star, ctx = primals
    _, dctx = tangents
    vb = mna.branch_voltages(x_star)

    def residual(ctx):
        circuit, pres, setup, e, i_src = ctx
        return mna.residual(x_star, _branch_currents(circuit, pres, setup, vb), e, i_src)

    _, df = jax.jvp(residual, (ctx,), (dctx,))
    circuit, pres, setup, _, _ = ctx
    _, g = jax.jvp(lambda v: _branch_currents(circuit, pres, setup, v), (vb,), (jnp.ones_like(vb),))
    return x_star, -mna.solve(g, df)


def _split(groups, vb):
    out, start = [], 0
    for grp in groups:
        out.append(vb[start : start + len(grp)])
        start += len(grp)
    return out


def _concat(parts, dtype):
    parts = [p for p in parts]
    if not parts:
        return jnp.zeros((0,), dtype)
    return jnp.concatenate(parts)


def _tolerances(dtype, rtol, atol):
    eps = float(jnp.finfo(dtype).eps)
    if rtol is None:
        rtol = max(1e-10, 1e3 * eps) if eps < 1e-10 else 1e-5
    if atol is None:
        atol = 1e-13 if eps < 1e-10 else 1e-7
    return rtol, atol


# --------------------------------------------------------------------------------------------
# DC operating point


def _dc_mna(circuit: Circuit) -> tuple[_MNA, list, list]:
    cond = [g for g in circuit.groups if g.dc == "conductor"]
    shorts = [g for g in circuit.groups if g.dc == "short"]
    mna = _MNA.from_pairs(
        circuit.n_nodes,
        [ab for g in cond for ab in g.nodes],
        list(circuit.vsources.nodes) + [ab for g in shorts for ab in g.nodes],
        circuit.isources.nodes,
    )
    return mna, cond, shorts


def dc_operating_point(circuit: Circuit, t0, *, max_iter=200, rtol=None, atol=None):
    """DC operating point at ``t0``: capacitors open, inductors shorted.

    Returns ``(x, converged, worst)`` where ``x`` holds node voltages, voltage-source currents
    and inductor currents. Newton from zero with junction limiting; when that fails, source
    stepping (ramping every source from 0 to its value in 10 stages), as SPICE does.
    """
    mna, cond, shorts = _dc_mna(circuit)
    dtype = jnp.asarray(t0).dtype
    rtol, atol = _tolerances(dtype, rtol, atol)
    n_short = sum(len(g) for g in shorts)

    def sources(c, scale):
        e = jnp.concatenate([c.vsources.values(t0), jnp.zeros((n_short,), dtype)]) * scale
        return e, c.isources.values(t0) * scale

    def make(c):
        groups = [g for g in c.groups if g.dc == "conductor"]

        def currents(vb):
            return _concat([g.dc_current(v) for g, v in zip(groups, _split(groups, vb))], dtype)

        return currents, functools.partial(_branch_limit, groups)

    c_const = _stop(circuit)
    currents, limit = make(c_const)
    x0 = jnp.zeros((mna.size,), dtype)
    e, i_src = sources(c_const, 1.0)
    x, ok, _, worst = _newton(
        mna, currents, limit, x0, e, i_src, max_iter=max_iter, rtol=rtol, atol=atol
    )

    def source_stepping(_):
        def stage(carry, s):
            x, ok_all, _ = carry
            e_s, i_s = sources(c_const, s)
            x, ok_s, _, w = _newton(
                mna, currents, limit, x, e_s, i_s, max_iter=max_iter, rtol=rtol, atol=atol
            )
            return (x, ok_all & ok_s, w), None

        scales = jnp.linspace(0.1, 1.0, 10, dtype=dtype)
        (x, ok_all, w), _ = jax.lax.scan(stage, (x0, jnp.asarray(True), jnp.asarray(0)), scales)
        return x, ok_all, w

    x, ok, worst = jax.lax.cond(ok, lambda _: (x, ok, worst), source_stepping, None)
    x = jax.lax.stop_gradient(x)
    currents_d, _ = make(circuit)
    e_d, i_d = sources(circuit, 1.0)
    x = _implicit_step(mna, currents_d, x, e_d, i_d)
    return x, ok, worst


# --------------------------------------------------------------------------------------------
# Transient


class _Carry(eqx.Module):
    x: Array
    states: tuple
    result: Array
    fail_step: Array
    fail_index: Array
    acc: Any
    max_iters: Array


class AbstractAccumulator(eqx.Module):
    """Accumulates a quantity online during the scan (memory independent of the step count)."""

    def init(self, vb0: Array, setup: StepSetup) -> Any:
        """Accumulator state at t = 0 from the initial branch voltages."""
        raise NotImplementedError

    def update(self, acc: Any, vb: Array, n: Array, setup: StepSetup) -> Any:
        """Fold in the converged branch voltages of step ``n``."""
        raise NotImplementedError

    def update_with_unknowns(
        self, acc: Any, x: Array, vb: Array, n: Array, setup: StepSetup
    ) -> Any:
        """Fold in step ``n`` given also its unknowns ``x`` (node voltages, then the currents of
        the voltage sources). `simulate` calls this; the default defers to `update`."""
        return self.update(acc, vb, n, setup)


def _transient_mna(circuit: Circuit) -> _MNA:
    return _MNA.from_pairs(
        circuit.n_nodes,
        [ab for g in circuit.groups for ab in g.nodes],
        circuit.vsources.nodes,
        circuit.isources.nodes,
    )


def _passed_through(body, init) -> list[bool]:
    """For each leaf of the carry ``init``: whether ``body`` returns it unchanged (traced
    once, abstractly; nothing is computed)."""
    flags: list[bool] = []

    def probe(carry):
        new, _ = body(carry, None)
        flags.extend(a is b for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(carry)))

    jax.eval_shape(probe, init)
    return flags


def _scan_steps(body, init, steps: int, checkpoint: int | None):
    """``lax.scan(body, init, None, length=steps)``, optionally rematerialised in segments.

    With ``checkpoint=k`` the first ``(steps // k)·k`` steps run as an outer scan over
    segments whose body is a `jax.checkpoint`-ed inner scan of ``k`` steps, so reverse mode
    keeps the carry at each segment boundary and recomputes one segment's residuals at a
    time. The remaining ``steps mod k`` steps run last as a plain scan (their residuals are
    no more than one segment's, and recomputing them would save nothing). The forward values
    are those of the single scan: the same step function runs on the same carries.
    """
    if checkpoint is None or checkpoint >= steps:
        return jax.lax.scan(body, init, None, length=steps)
    segments, remainder = divmod(steps, checkpoint)

    # Carry leaves that the step passes through unchanged (e.g. a history backend's weights)
    # are closed over rather than carried, so that the segment boundaries do not store them.
    leaves, treedef = jax.tree.flatten(init)
    fixed = _passed_through(body, init)
    moving = [leaf for leaf, f in zip(leaves, fixed) if not f]

    def merge(moving):
        it = iter(moving)
        return jax.tree.unflatten(treedef, [x if f else next(it) for x, f in zip(leaves, fixed)])

    def inner(moving, _):
        new, out = body(merge(moving), None)
        return [x for x, f in zip(jax.tree.leaves(new), fixed) if not f], out

    def segment(moving, _):
        return jax.lax.scan(inner, moving, None, length=checkpoint)

    # `prevent_cse=False`: the checkpointed function is a scan body, which already keeps XLA
    # from merging the recomputation with the forward pass (see `jax.checkpoint`).
    moving, outs = jax.lax.scan(
        jax.checkpoint(segment, prevent_cse=False), moving, None, length=segments
    )
    carry = merge(moving)
    outs = jax.tree.map(lambda a: a.reshape((segments * checkpoint,) + a.shape[2:]), outs)
    if remainder:
        carry, tail = jax.lax.scan(body, carry, None, length=remainder)
        outs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outs, tail)
    return carry, outs


@eqx.filter_jit
def _run(
    circuit: Circuit,
    dt: Array,
    steps: int,
    kernel: AbstractKernel,
    history: AbstractHistory,
    rest: bool,
    max_newton: int,
    rtol: float,
    atol: float,
    save_currents: bool,
    progress: AbstractProgress,
    save_conductances: bool = False,
    save_states: bool = True,
    accumulator: AbstractAccumulator | None = None,
    checkpoint: int | None = None,
):
    dtype = dt.dtype
    groups = circuit.groups
    mna = _transient_mna(circuit)
    n = circuit.n_nodes
    nv = len(circuit.vsources)
    setup = StepSetup(dt=dt, steps=steps, kernel=kernel, history=history)
    linear = all(g.linear for g in groups)

    for g in groups:
        if isinstance(g, Memristors | CPEs):
            circuit = eqx.error_if(
                circuit,
                jnp.any((g.alpha <= 0) | (g.alpha > 1)),
                f"alpha of the {g.kind} ({', '.join(g.names)}) must lie in (0, 1]",
            )
            if g.order_classes is not None:
                circuit = eqx.error_if(
                    circuit,
                    shared_order_mismatch(g),
                    f"alpha of the {g.kind} ({', '.join(g.names)}) changed after "
                    "Circuit.share_orders() recorded which of them are equal; call "
                    "share_orders() again on the changed circuit, or share_orders(False)",
                )
    groups = circuit.groups

    # ---- initial state ----
    if rest:
        x0 = jnp.zeros((mna.size,), dtype)
        vb0 = jnp.zeros((len(mna.a),), dtype)
        i_short = None
        dc_ok, dc_worst = jnp.asarray(True), jnp.asarray(0)
        ib0 = jnp.zeros((len(mna.a),), dtype)
    else:
        xdc, dc_ok, dc_worst = dc_operating_point(
            circuit, jnp.zeros((), dtype), rtol=rtol, atol=atol
        )
        x0 = xdc[: mna.size]
        i_short = xdc[mna.size :]
        vb0 = mna.branch_voltages(x0)
        ib_parts, start_short = [], 0
        for g, v in zip(groups, _split(groups, vb0)):
            if g.dc == "conductor":
                ib_parts.append(g.dc_current(v))
            elif g.dc == "short":
                ib_parts.append(i_short[start_short : start_short + len(g)])
                start_short += len(g)
            else:
                ib_parts.append(jnp.zeros_like(v))
        ib0 = _concat(ib_parts, dtype)

    states, start_short = [], 0
    for g, v in zip(groups, _split(groups, vb0)):
        i0 = None
        if g.dc == "short" and i_short is not None:
            i0 = i_short[start_short : start_short + len(g)]
            start_short += len(g)
        states.append(g.init(v, i0, setup))

    ok0 = dc_ok
    init = _Carry(
        x=x0,
        states=tuple(states),
        result=jnp.where(ok0, 0, 3).astype(jnp.int32),
        fail_step=jnp.asarray(0, jnp.int32),
        fail_index=jnp.asarray(dc_worst, jnp.int32),
        acc=None if accumulator is None else accumulator.init(vb0, setup),
        max_iters=jnp.asarray(0, jnp.int32),
    )

    def step(carry: _Carry, nstep):
        t = nstep.astype(dtype) * dt
        e = circuit.vsources.values(t)
        i_src = circuit.isources.values(t)
        pres = tuple(g.prepare(s, nstep, setup) for g, s in zip(groups, carry.states))
        c_const, pres_const = _stop(circuit), _stop(pres)
        x_star, conv, iters, worst = _newton(
            mna,
            functools.partial(_branch_currents, c_const, pres_const, setup),
            functools.partial(_branch_limit, c_const.groups),
            jax.lax.stop_gradient(carry.x),
            jax.lax.stop_gradient(e),
            jax.lax.stop_gradient(i_src),
            max_iter=max_newton,
            rtol=rtol,
            atol=atol,
            linear=linear,
        )
        x = _converged(mna, jax.lax.stop_gradient(x_star), (circuit, pres, setup, e, i_src))
        vb = mna.branch_voltages(x)
        new_states = tuple(
            g.advance(s, v, p, nstep, setup)
            for g, s, v, p in zip(groups, carry.states, _split(groups, vb), pres)
        )
        finite = jnp.all(jnp.isfinite(x))
        first_bad = jnp.argmax(~jnp.isfinite(x))
        code = jnp.where(~finite, RESULTS.nonfinite, jnp.where(conv, 0, RESULTS.newton_failed))
        fresh = (carry.result == 0) & (code != 0)
        result = jnp.where(fresh, code, carry.result).astype(jnp.int32)
        fail_step = jnp.where(fresh, nstep, carry.fail_step).astype(jnp.int32)
        fail_index = jnp.where(fresh, jnp.where(finite, worst, first_bad), carry.fail_index).astype(
            jnp.int32
        )
        out = {}
        if save_states:
            out["x"] = x
            out["iters"] = iters
        if save_currents or save_conductances:
            currents = functools.partial(_branch_currents, circuit, pres, setup)
            i_b, g_b = jax.jvp(currents, (vb,), (jnp.ones_like(vb),))
            if save_currents:
                out["i"] = i_b
            if save_conductances:
                out["g"] = g_b
        acc = carry.acc
        if accumulator is not None:
            acc = accumulator.update_with_unknowns(acc, x, vb, nstep, setup)
        progress.update(nstep, steps)
        new = _Carry(
            x,
            new_states,
            result,
            fail_step,
            fail_index,
            acc,
            jnp.maximum(carry.max_iters, iters).astype(carry.max_iters.dtype),
        )
        return new, out

    # The step index rides in the carry rather than as scanned `jnp.arange(1, steps + 1)`,
    # which XLA materialises: an O(N) buffer in runs whose memory is otherwise O(1) in N.
    def counted_step(carry_n, _):
        carry, nstep = carry_n
        new, out = step(carry, nstep)
        return (new, nstep + 1), out

    (final, _), outs = _scan_steps(counted_step, (init, jnp.asarray(1)), steps, checkpoint)
    if save_states:
        xs = jnp.concatenate([x0[None], outs["x"]], axis=0)
        iters = jnp.concatenate([jnp.zeros((1,), outs["iters"].dtype), outs["iters"]])
    else:
        # Nothing per step is kept, so memory does not grow with the number of steps.
        xs = x0[None]
        iters = final.max_iters[None]
    i_branch = None
    if save_currents:
        i_branch = jnp.concatenate([ib0[None], outs["i"]], axis=0)
    g_branch = None
    if save_conductances:
        g_branch = jnp.concatenate([jnp.zeros_like(outs["g"][:1]), outs["g"]], axis=0)
    ts = jnp.arange(steps + 1, dtype=dtype) * dt
    i_isrc = jax.vmap(circuit.isources.values)(ts) if save_currents else None
    return Trajectory(
        ts=ts,
        v=xs[:, :n],
        i_vsrc=xs[:, n : n + nv],
        i_branch=i_branch,
        i_isrc=i_isrc,
        g_branch=g_branch,
        accumulated=final.acc,
        result=final.result,
        fail_step=final.fail_step,
        fail_index=final.fail_index,
        newton_iterations=iters,
        node_names=circuit.node_names,
        vsource_names=circuit.vsources.names,
        branch_names=circuit.branch_names,
        max_newton=max_newton,
    )


def check_checkpoint(checkpoint: Any, steps: int, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` unless ``checkpoint`` is ``None`` or a positive integer (steps per
    rematerialised segment); the message suggests about √steps."""
    if checkpoint is not None and (
        not isinstance(checkpoint, int | np.integer)
        or isinstance(checkpoint, bool)
        or checkpoint < 1
    ):
        raise error(
            f"checkpoint={checkpoint!r} must be None (no rematerialisation) or a positive "
            f"integer number of steps per segment, e.g. checkpoint={max(1, math.isqrt(steps))} "
            f"(about √steps for steps={steps})"
        )


def simulate(
    circuit: Circuit,
    *,
    dt: float | Array,
    steps: int,
    kernel: AbstractKernel = GL(),
    history: AbstractHistory | str = "auto",
    uic: bool = False,
    inputs: dict[str, Any] | None = None,
    throw: bool = True,
    max_newton: int = 50,
    rtol: float | None = None,
    atol: float | None = None,
    save_currents: bool = False,
    save_conductances: bool = False,
    save_states: bool = True,
    accumulator: AbstractAccumulator | None = None,
    progress: AbstractProgress = NoProgress(),
    dtype: Any = None,
    checkpoint: int | None = None,
    share_orders: bool = True,
) -> Trajectory:
    """Transient analysis of ``circuit`` on the uniform grid ``t_n = n·dt``, ``n = 0 … steps``.

    **Arguments**

    - ``circuit``: a `Circuit` (from `CircuitBuilder` or `parse_netlist`).
    - ``dt``: the time step in seconds (may be a traced array); ``steps``: number of steps
      (static).
    - ``kernel``: convolution quadrature of the fractional operators, and the multistep method
      of the integer-order capacitors and inductors (`AbstractKernel.integer_weights`):
      `GL` (default) is backward Euler, `FBDF2` is BDF2 started by one backward-Euler step,
      second order on circuits of C, L, R and sources (from rest or from the DC operating
      point) as long as the sources are smooth for ``t > 0``. A source that jumps at some
      ``t > 0`` makes the BDF2 error O(dt) after the jump (SPICE restarts its integrator at
      such breakpoints; fracprop does not). Fractional elements (CPEs, memristors) use the
      kernel's convolution weights without Lubich starting weights, so under `FBDF2` they
      are first order near their ``t^α`` start, like `GL` (see `solve_linear_fde` for the
      scalar equation with starting weights).
    - ``history``: the history backend: an `AbstractHistory` or one of ``"auto"`` (default:
      `Exact` up to 1024 steps, beyond that `SOE` for the `GL` kernel and `HLS` for any
      other), ``"exact"``, ``"dense"``, ``"hls"``, ``"soe"`` (see `resolve_history`).
    - ``uic``: start from rest instead of the DC operating point (SPICE's UIC). Circuits with
      fractional elements (memristors, CPEs) always start from rest: all voltages, currents
      and histories are zero for ``t ≤ 0``, and the sources act from the first step on.
    - ``inputs``: optional ``{source name: waveform or array}``; arrays of length
      ``steps + 1`` become `Sampled` sources on this grid. Batch with `jax.vmap` over them.
    - ``throw``: raise `SimulationError` if the run fails (outside `jit`/`vmap`). Under
      `vmap`, pass ``throw=False`` and read ``Trajectory.result`` per lane.
    - ``max_newton``, ``rtol``, ``atol``: Newton limits; converged when every update satisfies
      ``|Δx| ≤ rtol·|x| + atol`` (defaults 1e-10 / 1e-13 in float64, 1e-5 / 1e-7 in float32).
    - ``save_currents``: also store every branch current (for KCL and energy checks).
    - ``save_conductances``: also store every branch's incremental conductance.
    - ``save_states``: store the node voltages at every step (``False`` keeps only ``t = 0``,
      for runs whose result is an online ``accumulator``; memory then does not grow with N).
    - ``accumulator``: an `AbstractAccumulator` folded over the run.
    - ``progress``: a progress meter, e.g. `TextProgress()` (off by default).
    - ``dtype``: floating dtype of the run (default: JAX's default float).
    - ``checkpoint``: ``None`` (default) or a number of steps ``k``: rematerialise the time
      scan for reverse-mode differentiation in segments of ``k`` steps (`jax.checkpoint`).
      Without it, `jax.grad` stores every step's residuals, memory ~ N·R. With it, reverse
      mode stores the scan state at the ``⌊N/k⌋`` segment boundaries plus one segment's
      residuals, memory ~ (N/k)·S + k·R (S the part of the state that changes from step to
      step: unknowns and history buffers, not constant weights; R the residuals of one step),
      smallest near ``k ≈ √(N·S/R)``. It costs one extra forward pass in reverse mode (each
      segment is run again before its backward pass). Measured on the benchmark network
      (float64, N = 2048, CPU; ``benchmarks/gradients.py``): `jax.grad` 146 MB → 14.8 MB of
      temporary memory with k = 64, 0.75 s → 1.22 s (the forward pass: 0.50 s). The forward
      values are unchanged (the same step on the same carries; bitwise in the CPU tests),
      and a run that is not
      differentiated recomputes nothing. A ``k ≥ steps`` is ``None``. The per-step outputs
      (``save_states``, ``save_currents``, ``save_conductances``) are still stored: pass
      ``save_states=False`` with an ``accumulator`` for memory ~ (N/k + k).
      With a progress meter, the recomputed segments report their steps again.
    - ``share_orders``: fractional elements of equal order α share one set of convolution
      weights (`Circuit.share_orders`), when their α are concrete here (not traced), so
      that they cannot be differentiated in this call. ``False`` gives every element its
      own weights; the results agree to round-off.

    **Returns** a `Trajectory`.

    **Raises** `SimulationError` when ``throw=True`` and Newton fails, the state becomes
    non-finite, or the DC operating point does not converge; `ValueError` for bad arguments.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"simulate expects a Circuit; got {type(circuit).__name__}")
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps={steps!r} must be a positive integer")
    check_checkpoint(checkpoint, steps)
    if dtype is None:
        dtype = jnp.result_type(float)
    if isinstance(dt, int | float | np.floating) and not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} must be a positive finite number of seconds")
    dt = jnp.asarray(dt, dtype=dtype)
    if inputs:
        for name, value in inputs.items():
            if not isinstance(value, eqx.Module):
                shape = jnp.shape(value)
                if shape != (steps + 1,):
                    raise ValueError(
                        f"inputs[{name!r}] has shape {shape}; a sampled input needs one value "
                        f"per time point, shape ({steps + 1},) for steps={steps}"
                    )
        circuit = circuit.with_sources(inputs, dt=dt)
    circuit = tree_dtype_cast(circuit, dtype).share_orders(share_orders)
    rest = bool(uic) or circuit.is_fractional
    if not rest:
        check_dc_loops(circuit)
    rtol, atol = _tolerances(dtype, rtol, atol)
    history = resolve_history(history, kernel, int(steps))
    traj = _run(
        circuit,
        dt,
        int(steps),
        kernel,
        history,
        rest,
        int(max_newton),
        float(rtol),
        float(atol),
        bool(save_currents),
        progress,
        bool(save_conductances),
        bool(save_states),
        accumulator,
        None if checkpoint is None else int(checkpoint),
    )
    if throw and not isinstance(traj.result, jax.core.Tracer):
        if not traj.ok:
            raise SimulationError(traj.message())
    return traj
