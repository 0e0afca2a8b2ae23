"""`CircuitBuilder`: add elements by name and node, then compile a `Circuit`."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import jax.numpy as jnp
import numpy as np

from .circuit import Circuit, CircuitError, _is_ground
from .elements import BRANCH_GROUPS, AbstractBranchGroup
from .elements.sources import ISources, VSources
from .laws import AbstractLaw, Linear, law_group_key
from .topology import _check_dc_paths, _check_voltage_loops
from .waveforms import AbstractWaveform, as_waveform


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
        """Fractional memristor ``i = D^{1−α}[g · s(I^{1−α} v)]`` (docs/design.md §1)."""
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
            cls = BRANCH_GROUPS.get(key[0])
            if cls is None:  # sources, collected below
                continue
            fields = [arr(es, p) for p in cls.parameters]
            if es[0].law is not None:
                fields.append(law(es))
            groups.append(cls(*meta(es), *fields))
        vs = by_kind.get(("V",), [])
        is_ = by_kind.get(("I",), [])
        vsources = VSources(*meta(vs), tuple(e.waveform for e in vs))
        isources = ISources(*meta(is_), tuple(e.waveform for e in is_))
        return Circuit(tuple(nodes), tuple(groups), vsources, isources, self.title)
