"""Topology checks: voltage-source loops and nodes with no DC path to ground."""

from __future__ import annotations

from collections import defaultdict

from .circuit import Circuit, CircuitError
from .elements import BRANCH_GROUPS


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


def _check_dc_paths(entries, nodes, idx):
    n = len(nodes)
    uf = _UnionFind(n + 1)
    for e in entries:
        group = BRANCH_GROUPS.get(e.kind)
        if e.kind == "V" or (group is not None and group.dc != "open"):
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
