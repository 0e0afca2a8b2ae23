"""Circuits: a Python builder, structural validation, and the compiled struct-of-arrays form."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike
from .elements.base import AbstractBranchGroup
from .elements.fractional import order_classes_of
from .elements.sources import ISources, VSources
from .waveforms import AbstractWaveform

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
            if not grp.fractional:
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
        from .waveforms import Sampled

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
    def parameters(self) -> dict[str, object]:
        """Every parameter by name, ``{"R1.g": value, "M1.alpha": value, ...}``.

        The keys are ``ELEMENT.field`` (``ELEMENT.law.field`` for the fields of a law), the
        values the entries of this tree for that element: for a circuit its parameters, for
        a gradient (an estimator's result, or ``jax.grad`` with respect to a circuit) the
        derivatives. Leaves that are ``None`` (parameters not selected, as in
        `LearningProblem.params`) are left out; a leaf that is not an array with one entry
        per element (e.g. after ``jax.tree.map(jnp.shape, ...)``) is given for the whole group
        under ``GROUP.field``.
        """
        out: dict[str, object] = {}
        for g in (*self.groups, self.vsources, self.isources):
            if len(g) == 0:
                continue
            flat = jax.tree_util.tree_flatten_with_path(g, is_leaf=_whole_value)[0]
            for path, x in flat:
                if x is None:
                    continue
                field = jax.tree_util.keystr(path, simple=True, separator=".")
                if eqx.is_array(x) and x.ndim >= 1 and x.shape[0] == len(g):
                    for k, name in enumerate(g.names):
                        out[f"{name}.{field}"] = x[k]
                else:
                    out[f"{g.kind}.{field}"] = x
        return out

    def _is_physical(self) -> bool:
        """Whether every leaf is a concrete floating array (a circuit, not a partial tree or a
        tree of other values), so that the element listing with units applies."""
        # An empty tuple is an empty container (no sources of a kind), not a shape.
        leaves = [
            x
            for x in jax.tree_util.tree_leaves(self, is_leaf=_whole_value)
            if not (isinstance(x, tuple) and not x)
        ]
        return all(
            eqx.is_array(x)
            and not isinstance(x, jax.core.Tracer)
            and jnp.issubdtype(x.dtype, jnp.inexact)
            for x in leaves
        )

    def __str__(self) -> str:
        title = f" {self.title!r}" if self.title else ""
        if not self._is_physical():
            # A partial tree (trainable parameters, a gradient) or a tree of other values:
            # named entries, no units.
            lines = [f"Circuit{title} parameters:"]
            for key, value in self.parameters().items():
                if eqx.is_array(value) and not isinstance(value, jax.core.Tracer):
                    value = np.asarray(value)
                    text = f"{float(value):.6g}" if value.size == 1 else str(value)
                else:
                    text = repr(value)
                lines.append(f"  {key} = {text}")
            return "\n".join(lines)
        lines = [f"Circuit{title}"]
        lines.append(f"  nodes ({self.n_nodes}): {', '.join(self.node_names)}  [ground: 0]")
        for g in (*self.groups, self.vsources, self.isources):
            if len(g) == 0:
                continue
            lines.append(f"  {g.kind} ({len(g)}):")
            for k, name in enumerate(g.names):
                a, b = g.nodes[k]
                na = "0" if a < 0 else self.node_names[a]
                nb = "0" if b < 0 else self.node_names[b]
                lines.append(f"    {name:<10} {na:>8} -> {nb:<8} {g.row(k)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


def _whole_value(x) -> bool:
    """Leaves of a listing: ``None`` and shapes (tuples of ints) stay whole."""
    return x is None or (isinstance(x, tuple) and all(isinstance(i, int) for i in x))


def _with_order_classes(circuit: Circuit, changes: dict[int, tuple[int, ...] | None]) -> Circuit:
    """``circuit`` with ``groups[i].order_classes = changes[i]`` for each ``i`` in ``changes``
    (fractional groups only; the other groups are kept)."""
    groups = list(circuit.groups)
    for i, classes in changes.items():
        if classes != groups[i].order_classes:
            groups[i] = dataclasses.replace(groups[i], order_classes=classes)
    return dataclasses.replace(circuit, groups=tuple(groups))


def _ground_to_end(pairs, n_nodes):
    if not pairs:
        return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
    arr = np.asarray(pairs, dtype=np.int32).reshape(-1, 2)
    arr = np.where(arr < 0, n_nodes, arr)
    return arr[:, 0], arr[:, 1]
