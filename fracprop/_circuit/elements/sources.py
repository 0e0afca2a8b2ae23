"""Independent voltage and current sources."""

from __future__ import annotations

import equinox as eqx

from ..waveforms import AbstractWaveform
from .base import AbstractSourceGroup


class VSources(AbstractSourceGroup):
    """Independent voltage sources ``v[a] − v[b] = E(t)``; their currents are MNA unknowns.

    The current unknown follows SPICE: positive when it flows into the ``+`` node ``a``, through
    the source, and out of ``b``. The power delivered to the circuit is ``−E(t)·i``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    waveforms: tuple[AbstractWaveform, ...]


class ISources(AbstractSourceGroup):
    """Independent current sources: ``I(t)`` flows from ``a`` through the source to ``b``.

    The power delivered to the circuit is ``−(v[a] − v[b])·I(t)``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    waveforms: tuple[AbstractWaveform, ...]
