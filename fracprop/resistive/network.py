"""`ResistiveNetwork`: the structure and parameters of a network of resistors, diodes and
input sources at steady state."""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .._circuit.circuit import Circuit
from .._circuit.elements.static import Diodes, Resistors
from .._custom_types import Array


class ResistiveError(ValueError):
    """A mistake in the definition of a resistive network, a problem on it, or its data."""


# ------------------------------------------------------------------------------- the network
def _int_pairs(name: str, pairs, n_nodes: int) -> np.ndarray:
    arr = np.asarray(pairs if pairs is not None else np.zeros((0, 2)), dtype=np.int64)
    if arr.size == 0:
        return np.zeros((0, 2), np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ResistiveError(
            f"{name} must have shape (count, 2) as (src, dst) pairs; got {arr.shape}"
        )
    bad = np.flatnonzero((arr < 0).any(1) | (arr >= n_nodes).any(1))
    if bad.size:
        k = int(bad[0])
        raise ResistiveError(
            f"{name}[{k}] = {tuple(int(x) for x in arr[k])} names a node outside the graph; "
            f"nodes are 0 … {n_nodes - 1} (n_nodes={n_nodes})"
        )
    loops = np.flatnonzero(arr[:, 0] == arr[:, 1])
    if loops.size:
        k = int(loops[0])
        raise ResistiveError(
            f"{name}[{k}] = {tuple(int(x) for x in arr[k])} joins a node to itself"
        )
    return arr


def _positive(name: str, value, count: int, *, unit: str) -> Array:
    """``value`` broadcast to ``(count,)``; every entry finite and > 0 when it is concrete."""
    arr = jnp.broadcast_to(jnp.asarray(value, dtype=float), (count,))
    if not isinstance(arr, jax.core.Tracer):
        host = np.asarray(arr)
        bad = np.flatnonzero(~(np.isfinite(host) & (host > 0)))
        if bad.size:
            k = int(bad[0])
            raise ResistiveError(
                f"{name}[{k}] = {host[k]!r} {unit}: every {name} must be a positive, finite number "
                f"({bad.size} entries are not); remove the edge instead of giving it zero "
                "conductance"
            )
    return arr


class ResistiveNetwork(eqx.Module):
    """A resistor (and diode) network with node 0 as ground and voltage-source inputs.

    **Arguments**

    - ``n_nodes``: number of nodes, ground (node 0) included.
    - ``edges``: ``(E, 2)`` integer ``(src, dst)`` pairs, one per linear resistor.
    - ``g``: ``(E,)`` conductances in siemens (trainable; each > 0).
    - ``inputs``: the input nodes, held at imposed voltages (ideal sources to ground).
    - ``diodes``: optional ``(D, 2)`` ``(anode, cathode)`` pairs; ``is_`` (A) and ``n``
      (emission coefficient) scalars or ``(D,)`` arrays.

    Node indices and the layout derived from them are integer array leaves (never trained,
    and filtered out of `ResistiveProblem.params`); sizes are static.

    **Raises** `ResistiveError` for a node outside ``0 … n_nodes−1``, a self-loop, an input
    that is ground or repeated, a non-positive or non-finite conductance, ``is_`` or ``n``, or
    a set of nodes with no conducting path to ground or to an input (its voltage would be
    undefined; the Laplacian would be singular).
    """

    n_nodes: int = eqx.field(static=True)
    inputs: tuple[int, ...] = eqx.field(static=True)
    n_free: int = eqx.field(static=True)
    edges: Array  # (E, 2) node ids
    g: Array  # (E,)
    diodes: Array  # (D, 2) node ids
    is_: Array  # (D,)
    n: Array  # (D,)
    pos: Array  # (n_nodes,) position of each node in z = [free nodes, ground, inputs]
    #: Names of the nodes (``node_names[0]`` is ground), when built from a circuit.
    node_names: tuple[str, ...] | None = eqx.field(static=True, default=None)
    #: Values of the input sources at t = 0, when built from a circuit (same order as inputs).
    input_values: tuple[float, ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        n_nodes: int,
        edges,
        g,
        inputs,
        diodes=None,
        is_=1e-14,
        n=1.0,
        *,
        node_names: tuple[str, ...] | None = None,
        input_values: tuple[float, ...] | None = None,
    ):
        if not isinstance(n_nodes, int | np.integer) or n_nodes < 2:
            raise ResistiveError(f"n_nodes={n_nodes!r} must be an integer ≥ 2 (node 0 is ground)")
        n_nodes = int(n_nodes)
        e = _int_pairs("edges", edges, n_nodes)
        d = _int_pairs("diodes", diodes, n_nodes)
        if len(e) == 0:
            raise ResistiveError("edges is empty: a resistive network needs at least one resistor")
        ins = tuple(int(k) for k in np.atleast_1d(np.asarray(inputs, dtype=np.int64)))
        for k in ins:
            if not 0 < k < n_nodes:
                raise ResistiveError(
                    f"input node {k} is {'ground' if k == 0 else 'outside the graph'}; inputs "
                    f"must be nodes 1 … {n_nodes - 1}"
                )
        if len(set(ins)) != len(ins):
            raise ResistiveError(f"inputs {ins} name a node twice")
        self.g = _positive("g", g, len(e), unit="S")
        self.is_ = _positive("is_", is_, len(d), unit="A")
        self.n = _positive("n", n, len(d), unit="(emission coefficient)")
        self.n_nodes, self.inputs = n_nodes, ins
        _check_grounded(n_nodes, e, d, ins)
        fixed = np.zeros(n_nodes, bool)
        fixed[0] = True
        fixed[list(ins)] = True
        free = np.flatnonzero(~fixed)
        pos = np.empty(n_nodes, np.int64)
        pos[free] = np.arange(len(free))
        pos[0] = len(free)
        pos[list(ins)] = len(free) + 1 + np.arange(len(ins))
        self.n_free = len(free)
        self.edges, self.diodes = jnp.asarray(e, jnp.int32), jnp.asarray(d, jnp.int32)
        self.pos = jnp.asarray(pos, jnp.int32)
        self.node_names = None if node_names is None else tuple(node_names)
        self.input_values = None if input_values is None else tuple(input_values)

    @classmethod
    def from_circuit(cls, circuit: Circuit) -> ResistiveNetwork:
        """The network of a `fracprop.Circuit` of linear resistors, diodes and voltage sources.

        Node ``k`` of the circuit (``circuit.node_names[k]``) is node ``k + 1`` here, ground
        node 0 (``node_names`` keeps the names; `node` looks one up). Every voltage source must
        connect a node to ground: that node is an input, in the order of the sources, and the
        node's voltage at ``t = 0`` is kept in ``input_values`` (the inputs themselves are
        given at solve time). Diodes keep their ``IS`` and ``N``.

        **Raises** `ResistiveError` for any other element (capacitors, inductors, memristors,
        CPEs, current sources, resistors with a nonlinear law) or a voltage source that does
        not connect a node to ground.
        """
        edges, g, diodes, is_, n = [], [], [], [], []
        for grp in circuit.groups:
            pairs = [(a + 1, b + 1) for a, b in grp.nodes]  # ground -1 becomes node 0
            if isinstance(grp, Resistors):
                edges += pairs
                g += [float(x) for x in np.asarray(grp.g)]
            elif isinstance(grp, Diodes):
                diodes += pairs
                is_ += [float(x) for x in np.asarray(grp.is_)]
                n += [float(x) for x in np.asarray(grp.n)]
            else:
                raise ResistiveError(
                    f"{grp.names[0]} is a {grp.kind[:-1].lower()}: a resistive network holds "
                    "linear resistors, diodes and voltage sources to ground only"
                )
        if len(circuit.isources):
            raise ResistiveError(
                f"{circuit.isources.names[0]} is a current source: a resistive network's inputs "
                "are voltage sources to ground"
            )
        inputs, values = [], []
        for name, (a, b), wave in zip(
            circuit.vsources.names, circuit.vsources.nodes, circuit.vsources.waveforms
        ):
            if (a < 0) == (b < 0):
                raise ResistiveError(
                    f"voltage source {name} connects two nodes; the inputs of a resistive "
                    "network are voltage sources from a node to ground (V name node 0 value)"
                )
            # "V name node 0 E" holds the node at +E; "V name 0 node E" at −E.
            node, sign = (a, 1.0) if b < 0 else (b, -1.0)
            inputs.append(node + 1)
            values.append(sign * float(wave(jnp.zeros(()))))
        return cls(
            circuit.n_nodes + 1,
            edges,
            g,
            inputs,
            diodes=diodes or None,
            is_=is_ or 1e-14,
            n=n or 1.0,
            node_names=("0", *circuit.node_names),
            input_values=tuple(values),
        )

    @classmethod
    def from_netlist(cls, netlist: str | os.PathLike) -> ResistiveNetwork:
        """`from_circuit` of a SPICE deck's text, or of the file at a path: R, D (with a
        ``.model D``) and V cards, the first line the title."""
        from .._circuit.netlist import load_netlist, parse_netlist

        if isinstance(netlist, os.PathLike) or (
            isinstance(netlist, str) and "\n" not in netlist and os.path.exists(netlist)
        ):
            deck = load_netlist(netlist)
        else:
            deck = parse_netlist(netlist)
        return cls.from_circuit(deck.circuit)

    def node(self, name: str) -> int:
        """The index of the node called ``name`` (networks built from a circuit)."""
        if self.node_names is None:
            raise ResistiveError("this network was built from indices; its nodes have no names")
        key = name.lower()
        if key in ("0", "gnd"):
            return 0
        if key not in self.node_names:
            raise ResistiveError(f"unknown node {name!r}; nodes are {', '.join(self.node_names)}")
        return self.node_names.index(key)

    @property
    def n_edges(self) -> int:
        return self.edges.shape[0]

    @property
    def n_diodes(self) -> int:
        return self.diodes.shape[0]

    def free_nodes(self) -> np.ndarray:
        """Node ids of the free nodes, in solver order."""
        fixed = {0, *self.inputs}
        return np.asarray([k for k in range(self.n_nodes) if k not in fixed])


def _check_grounded(n_nodes: int, e: np.ndarray, d: np.ndarray, inputs) -> None:
    """Every node must reach ground through resistors, diodes or an input source."""
    src = np.concatenate([e[:, 0], d[:, 0], np.asarray(inputs, np.int64)])
    dst = np.concatenate([e[:, 1], d[:, 1], np.zeros(len(inputs), np.int64)])
    adj = sp.coo_matrix((np.ones(len(src)), (src, dst)), shape=(n_nodes, n_nodes))
    _, label = connected_components(adj, directed=False)
    floating = np.flatnonzero(label != label[0])
    if floating.size:
        shown = ", ".join(str(int(k)) for k in floating[:10])
        more = f" and {floating.size - 10} more" if floating.size > 10 else ""
        raise ResistiveError(
            f"nodes {shown}{more} have no conducting path to ground (node 0) or to an input: "
            "their voltages are undefined. Connect each such component to the rest of the "
            "network (or remove it)."
        )
