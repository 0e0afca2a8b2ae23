"""Circuits: a Python builder, structural validation, and the compiled struct-of-arrays form."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, ArrayLike
from ._elements import (
    AbstractBranchGroup,
    Capacitors,
    CPEs,
    Diodes,
    Inductors,
    ISources,
    Memristors,
    Resistors,
    VSources,
    order_classes_of,
)
from ._laws import AbstractLaw, Linear, law_group_key
from ._waveforms import AbstractWaveform, as_waveform

GROUND_NAMES = ("0", "gnd")


class CircuitError(ValueError):
    """A structural mistake in a circuit (raised at build time, before any simulation)."""


def _is_ground(node: str) -> bool:
    return node.lower() in GROUND_NAMES


class Circuit(eqx.Module):
    """A compiled circuit: one batched module per element type, plus the node list.

    Parameters are array leaves (``circuit.groups[k].g`` and so on); use `Circuit.get` and
    `Circuit.set` to address one element by name. Node ``k`` of the unknown vector is
    ``node_names[k]``; ground is not a node.
    """

    node_names: tuple[str, ...] = eqx.field(static=True)
    groups: tuple[AbstractBranchGroup, ...]
    vsources: VSources
    isources: ISources
    title: str = eqx.field(static=True, default="")

    # -- structure ------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.node_names)

    @property
    def is_fractional(self) -> bool:
        """True when any element has fractional memory (then the run starts from rest)."""
        return any(g.fractional for g in self.groups)

    @property
    def branch_names(self) -> tuple[str, ...]:
        return tuple(name for g in self.groups for name in g.names)

    def node_index(self, name: str) -> int:
        key = name.lower()
        if _is_ground(key):
            return -1
        if key not in self.node_names:
            raise CircuitError(
                f"unknown node {name!r}; the circuit's nodes are {', '.join(self.node_names)}"
            )
        return self.node_names.index(key)

    def incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """Node indices ``(a, b)`` of every branch, ground mapped to ``n_nodes``."""
        pairs = [ab for g in self.groups for ab in g.nodes]
        return _ground_to_end(pairs, self.n_nodes)

    def _locate(self, name: str):
        key = name.lower()
        for gi, g in enumerate((*self.groups, self.vsources, self.isources)):
            for k, n in enumerate(g.names):
                if n.lower() == key:
                    return gi, g, k
        raise CircuitError(f"no element named {name!r} in the circuit")

    def get(self, name: str, parameter: str) -> Array:
        """The value of ``parameter`` (for example ``"g"``, ``"c"``, ``"alpha"``) of one element."""
        _, g, k = self._locate(name)
        return getattr(self._param_holder(g, parameter, name), parameter)[k]

    def set(self, name: str, parameter: str, value: ArrayLike) -> Circuit:
        """A copy of the circuit with one element's ``parameter`` replaced by ``value``."""
        gi, g, k = self._locate(name)
        holder = self._param_holder(g, parameter, name)
        old = getattr(holder, parameter)
        new = old.at[k].set(jnp.asarray(value, dtype=old.dtype))

        def where(c):
            grp = (*c.groups, c.vsources, c.isources)[gi]
            return getattr(grp.law if holder is not g else grp, parameter)

        out = eqx.tree_at(where, self, new)
        if parameter == "alpha":  # the recorded classes of equal α may no longer hold
            out = _with_order_classes(out, {gi: None})
        return out

    def share_orders(self, enable: bool = True) -> Circuit:
        """A copy whose fractional elements of equal order α share their convolution weights.

        For each group of memristors or CPEs, the elements are sorted into classes of equal
        α, read from the concrete values. The history backends then compute and store the
        weights (and `Dense`'s Hankel rows, `HLS`'s spectra, `SOE`'s modes) once per class
        instead of once per element, and `Dense` forms one matrix product per class: on the
        benchmark network, 2 orders instead of 128 channels. `simulate` does this itself for
        orders that are concrete, and `LearningProblem` for orders it does not train; call it
        to get the same inside code that you `jit` yourself, where the orders are traced.

        The shared α must then stay fixed. A run in which they no longer agree within a class
        raises, and so does differentiating them, as one set of weights has no derivative per
        element. `Circuit.set` of an ``alpha`` drops its group's classes. ``enable=False``
        removes every class (one set of weights per element, as needed to differentiate α).
        A group whose α are all distinct, or that is traced here, is left as it is.
        """
        changes = {}
        for i, grp in enumerate(self.groups):
            if not isinstance(grp, Memristors | CPEs):
                continue
            if not enable:
                changes[i] = None
            elif not isinstance(grp.alpha, jax.core.Tracer):
                found = order_classes_of(grp.alpha)
                changes[i] = found if max(found) + 1 < len(found) else None
        return _with_order_classes(self, changes)

    @staticmethod
    def _param_holder(g, parameter, name):
        if parameter in g.parameter_names():
            return g
        law = getattr(g, "law", None)
        if law is not None and eqx.is_array(getattr(law, parameter, None)):
            return law
        raise CircuitError(
            f"element {name!r} ({g.kind}) has no parameter {parameter!r}; "
            f"it has {', '.join(g.parameter_names())}"
        )

    # -- sources --------------------------------------------------------------------------
    def with_sources(self, sources: dict[str, AbstractWaveform | ArrayLike], dt=None) -> Circuit:
        """Replace the waveforms of named sources. Arrays become `Sampled` (needs ``dt``)."""
        from ._waveforms import Sampled

        circuit = self
        for name, value in sources.items():
            gi, g, k = self._locate(name)
            if not isinstance(g, VSources | ISources):
                raise CircuitError(f"{name!r} is not an independent source")
            if not isinstance(value, AbstractWaveform):
                if dt is None:
                    raise CircuitError(f"source {name!r} was given samples but no dt")
                value = Sampled(value, dt)
            is_v = isinstance(g, VSources)
            circuit = eqx.tree_at(
                lambda c, is_v=is_v, k=k: (c.vsources if is_v else c.isources).waveforms[k],
                circuit,
                value,
            )
        return circuit

    # -- listing --------------------------------------------------------------------------
    def __str__(self) -> str:
        lines = [f"Circuit {self.title!r}" if self.title else "Circuit"]
        lines.append(f"  nodes ({self.n_nodes}): {', '.join(self.node_names)}  [ground: 0]")
        for g in (*self.groups, self.vsources, self.isources):
            if len(g) == 0:
                continue
            lines.append(f"  {g.kind} ({len(g)}):")
            for k, name in enumerate(g.names):
                a, b = g.nodes[k]
                na = "0" if a < 0 else self.node_names[a]
                nb = "0" if b < 0 else self.node_names[b]
                lines.append(f"    {name:<10} {na:>8} -> {nb:<8} {_row(g, k)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


def _with_order_classes(circuit: Circuit, changes: dict[int, tuple[int, ...] | None]) -> Circuit:
    """``circuit`` with ``groups[i].order_classes = changes[i]`` for each ``i`` in ``changes``
    (fractional groups only; the other groups are kept)."""
    groups = list(circuit.groups)
    for i, classes in changes.items():
        if classes != groups[i].order_classes:
            groups[i] = dataclasses.replace(groups[i], order_classes=classes)
    return dataclasses.replace(circuit, groups=tuple(groups))


def _row(group, k: int) -> str:
    """Parameter text of element ``k``; for partial trees (trainable parameters or gradients,
    with ``None`` at the other leaves) the leaves that are present."""
    leaves = jax.tree_util.tree_flatten_with_path(group, is_leaf=lambda x: x is None)[0]
    if all(x is not None for _, x in leaves):
        return group.row(k)
    parts = []
    for path, x in leaves:
        if eqx.is_array(x) and x.ndim >= 1 and x.shape[0] > k:
            parts.append(f"{jax.tree_util.keystr(path).lstrip('.')}={float(x[k]):.6g}")
    return " ".join(parts) or "-"


def _ground_to_end(pairs, n_nodes):
    if not pairs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    arr = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
    arr = np.where(arr < 0, n_nodes, arr)
    return arr[:, 0], arr[:, 1]


@dataclasses.dataclass
class _Entry:
    kind: str
    name: str
    a: str
    b: str
    params: dict
    law: AbstractLaw | None = None
    waveform: AbstractWaveform | None = None


def _positive(value, what: str, name: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise CircuitError(f"{name}: {what}={value!r} is not a number") from None
    if not np.isfinite(x) or x <= 0:
        raise CircuitError(f"{name}: {what} must be positive and finite; got {value!r}")
    return x


def _alpha(value, name: str) -> float:
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise CircuitError(f"{name}: alpha={value!r} is not a number") from None
    if not (0.0 < a <= 1.0):
        raise CircuitError(f"{name}: alpha={value!r} must lie in (0, 1]; choose 0 < alpha <= 1")
    return a


class CircuitBuilder:
    """Build a circuit element by element, then `build` it.

    Node names are case-insensitive (stored lower-case); ``"0"`` and ``"gnd"`` are ground.

    Example::

        b = CircuitBuilder("RC")
        b.vsource("V1", "in", "0", Pulse(0, 1, tr=1e-6, tf=1e-6, pw=1e-3, per=2e-3))
        b.resistor("R1", "in", "out", 1e3)
        b.capacitor("C1", "out", "0", 1e-6)
        circuit = b.build()
    """

    def __init__(self, title: str = ""):
        self.title = title
        self._entries: list[_Entry] = []
        self._names: dict[str, int] = {}

    # -- adding elements ------------------------------------------------------------------
    def _add(self, entry: _Entry) -> CircuitBuilder:
        if not isinstance(entry.name, str) or not entry.name:
            raise CircuitError(f"element name must be a non-empty string; got {entry.name!r}")
        key = entry.name.lower()
        if key in self._names:
            raise CircuitError(f"duplicate element name {entry.name!r}")
        for node in (entry.a, entry.b):
            if not isinstance(node, str) or not node:
                raise CircuitError(f"{entry.name}: node names must be non-empty strings")
        if entry.a.lower() == entry.b.lower() or (_is_ground(entry.a) and _is_ground(entry.b)):
            raise CircuitError(f"{entry.name}: both terminals are on node {entry.a!r}")
        self._names[key] = len(self._entries)
        self._entries.append(entry)
        return self

    def resistor(self, name: str, a: str, b: str, r: float | None = None, *, g=None):
        """Linear resistor of resistance ``r`` ohms (or conductance ``g`` siemens)."""
        if (r is None) == (g is None):
            raise CircuitError(f"{name}: give exactly one of r (ohms) or g (siemens)")
        gval = 1.0 / _positive(r, "R", name) if g is None else _positive(g, "g", name)
        return self._add(_Entry("R", name, a, b, {"g": gval}))

    def diode(self, name: str, anode: str, cathode: str, *, is_: float = 1e-14, n: float = 1.0):
        """Shockley diode with saturation current ``is_`` and emission coefficient ``n``."""
        return self._add(
            _Entry(
                "D",
                name,
                anode,
                cathode,
                {"is_": _positive(is_, "IS", name), "n": _positive(n, "N", name)},
            )
        )

    def capacitor(self, name: str, a: str, b: str, c: float, *, law: AbstractLaw | None = None):
        """Capacitor ``q = c · s(v)``; ``law`` is the shape ``s`` (default `Linear`)."""
        return self._add(
            _Entry("C", name, a, b, {"c": _positive(c, "C", name)}, law=law or Linear())
        )

    def inductor(self, name: str, a: str, b: str, l: float, *, law: AbstractLaw | None = None):
        """Inductor ``i = s(Φ) / l``; ``law`` is the shape ``s`` (default `Linear`)."""
        return self._add(
            _Entry("L", name, a, b, {"l": _positive(l, "L", name)}, law=law or Linear())
        )

    def memristor(
        self,
        name: str,
        a: str,
        b: str,
        *,
        g: float,
        alpha: float,
        law: AbstractLaw | None = None,
    ):
        """Fractional memristor ``i = D^{1−α}[g · s(I^{1−α} v)]`` (DESIGN §1)."""
        params = {"g": _positive(g, "g", name), "alpha": _alpha(alpha, name)}
        return self._add(_Entry("M", name, a, b, params, law=law or Linear()))

    def cpe(self, name: str, a: str, b: str, *, c: float, alpha: float):
        """Constant-phase element ``i = c · ᶜD^α v`` (impedance ``1/(c s^α)``)."""
        params = {"c": _positive(c, "C", name), "alpha": _alpha(alpha, name)}
        return self._add(_Entry("P", name, a, b, params))

    def vsource(self, name: str, plus: str, minus: str, value: AbstractWaveform | float):
        """Independent voltage source ``v(plus) − v(minus) = value(t)``."""
        return self._add(_Entry("V", name, plus, minus, {}, waveform=as_waveform(value)))

    def isource(self, name: str, a: str, b: str, value: AbstractWaveform | float):
        """Independent current source; ``value(t)`` flows from ``a`` through it to ``b``."""
        return self._add(_Entry("I", name, a, b, {}, waveform=as_waveform(value)))

    # -- building -------------------------------------------------------------------------
    def build(self) -> Circuit:
        """Validate the topology and compile into batched groups.

        **Raises** `CircuitError` for an empty circuit, a node with no DC path to ground, or a
        loop of voltage sources.
        """
        if not self._entries:
            raise CircuitError("the circuit is empty; add at least one element")
        nodes: list[str] = []
        for e in self._entries:
            for node in (e.a, e.b):
                key = node.lower()
                if not _is_ground(key) and key not in nodes:
                    nodes.append(key)
        if not nodes:
            raise CircuitError("the circuit has no node other than ground")
        index = {n: i for i, n in enumerate(nodes)}

        def idx(node):
            return -1 if _is_ground(node) else index[node.lower()]

        _check_voltage_loops(
            [(e.name, idx(e.a), idx(e.b)) for e in self._entries if e.kind == "V"],
            nodes,
            "voltage sources",
        )
        _check_dc_paths(self._entries, nodes, idx)

        groups: list[AbstractBranchGroup] = []
        by_kind: dict[tuple, list[_Entry]] = defaultdict(list)
        for e in self._entries:
            key = (e.kind,) + (law_group_key(e.law) if e.law is not None else ())
            by_kind[key].append(e)

        def arr(es, p):
            return jnp.asarray([x.params[p] for x in es], dtype=float)

        def meta(es):
            return tuple(x.name for x in es), tuple((idx(x.a), idx(x.b)) for x in es)

        def law(es):
            return es[0].law.stack([x.law for x in es[1:]])

        for key, es in by_kind.items():
            kind = key[0]
            names, pairs = meta(es)
            if kind == "R":
                groups.append(Resistors(names, pairs, arr(es, "g")))
            elif kind == "D":
                groups.append(Diodes(names, pairs, arr(es, "is_"), arr(es, "n")))
            elif kind == "C":
                groups.append(Capacitors(names, pairs, arr(es, "c"), law(es)))
            elif kind == "L":
                groups.append(Inductors(names, pairs, arr(es, "l"), law(es)))
            elif kind == "M":
                groups.append(Memristors(names, pairs, arr(es, "g"), arr(es, "alpha"), law(es)))
            elif kind == "P":
                groups.append(CPEs(names, pairs, arr(es, "c"), arr(es, "alpha")))
        vs = by_kind.get(("V",), [])
        is_ = by_kind.get(("I",), [])
        vsources = VSources(*meta(vs), tuple(e.waveform for e in vs))
        isources = ISources(*meta(is_), tuple(e.waveform for e in is_))
        return Circuit(tuple(nodes), tuple(groups), vsources, isources, self.title)


class _UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[ra] = rb
        return True


def _check_voltage_loops(edges, nodes, what):
    """Raise if the given voltage-defined branches (name, a, b) close a loop."""
    n = len(nodes)
    uf = _UnionFind(n + 1)
    adj: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for name, a, b in edges:
        a = n if a < 0 else a
        b = n if b < 0 else b
        if not uf.union(a, b):
            path = _path(adj, a, b) + [name]
            raise CircuitError(
                f"loop of {what}: {' - '.join(path)}; the voltages around a loop cannot all be "
                "imposed. Remove one of them or put a resistor in series."
            )
        adj[a].append((b, name))
        adj[b].append((a, name))


def _path(adj, start, goal):
    stack = [(start, [])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        for nxt, name in adj[node]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [name]))
    return []


_DC_CONDUCTING = {"R", "D", "L", "M", "V"}


def _check_dc_paths(entries, nodes, idx):
    n = len(nodes)
    uf = _UnionFind(n + 1)
    for e in entries:
        if e.kind in _DC_CONDUCTING:
            a, b = idx(e.a), idx(e.b)
            uf.union(n if a < 0 else a, n if b < 0 else b)
    ground = uf.find(n)
    floating = [nodes[i] for i in range(n) if uf.find(i) != ground]
    if floating:
        raise CircuitError(
            f"node {floating[0]!r} has no DC path to ground"
            + (f" (nor do {', '.join(repr(x) for x in floating[1:])})" if floating[1:] else "")
            + "; connect it to ground through a resistor (for example 1e12 ohm), as SPICE requires"
        )


def check_dc_loops(circuit: Circuit) -> None:
    """At the DC operating point inductors are shorts: they must not close a loop with V sources."""
    edges = [(n, a, b) for n, (a, b) in zip(circuit.vsources.names, circuit.vsources.nodes)]
    for g in circuit.groups:
        if g.dc == "short":
            edges += [(n, a, b) for n, (a, b) in zip(g.names, g.nodes)]
    _check_voltage_loops(edges, circuit.node_names, "voltage sources and inductors (shorts at DC)")
