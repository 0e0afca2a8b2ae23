"""Modified nodal analysis: the layout of unknowns, residual, Jacobian and linear solve."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._circuit.circuit import Circuit


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


def _transient_mna(circuit: Circuit) -> _MNA:
    return _MNA.from_pairs(
        circuit.n_nodes,
        [ab for g in circuit.groups for ab in g.nodes],
        circuit.vsources.nodes,
        circuit.isources.nodes,
    )
