"""What reading a netlist gives: `Netlist`, `Tran`, and its error and warning types."""

from __future__ import annotations

from dataclasses import dataclass

from ..circuit import Circuit

DEFAULT_SOURCE = "<netlist>"


class NetlistError(ValueError):
    """A netlist that cannot be read. The message names the line and quotes the offending text."""


class NetlistWarning(UserWarning):
    """Something in a netlist that was accepted but ignored."""


@dataclass(frozen=True)
class Place:
    """Where a line of a netlist is: its file (``source``) and line number, after the
    ``.include`` and ``.lib`` cards that led there (``(source, line)`` pairs, outermost first).

    ``str(place)`` is ``"a.cir, line 3 → b.lib, line 7"`` (``"line 7"`` for the text given to
    `parse_netlist` without a ``source``).
    """

    source: str
    line: int
    included_from: tuple[tuple[str, int], ...] = ()

    def __str__(self) -> str:
        return " → ".join(_at(s, n) for s, n in (*self.included_from, (self.source, self.line)))


def _at(source: str, line: int) -> str:
    return f"line {line}" if source == DEFAULT_SOURCE else f"{source}, line {line}"


@dataclass(frozen=True)
class NetlistNote:
    """A warning raised while reading a netlist, with the `Place` it concerns.

    ``str(note)`` is the text of ``Netlist.warnings`` (``"deck.cir, line 12: message"``);
    `one_line` is the compiler-style line that ``fracprop simulate`` prints.
    """

    place: Place
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"

    def one_line(self) -> str:
        """``"deck.cir:12: warning: message"``, followed by ``"(included from a.cir:3)"`` for a
        line of an included file."""
        text = f"{self.place.source}:{self.place.line}: warning: {self.message}"
        if self.place.included_from:
            chain = ", ".join(f"{s}:{n}" for s, n in reversed(self.place.included_from))
            text += f" (included from {chain})"
        return text


@dataclass(frozen=True)
class Tran:
    """The ``.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]`` card."""

    tstep: float
    tstop: float
    uic: bool = False


@dataclass(frozen=True)
class Options:
    """The ``.options`` that fracprop uses (SPICE's names; ``None`` where the deck sets none).

    - ``reltol``: relative tolerance of the time-error control (`simulate`'s ``rtol``).
    - ``vntol``: absolute tolerance of node voltages in volts (``atol``).
    - ``abstol``: absolute tolerance of currents in amperes (``atol_current``).
    """

    reltol: float | None = None
    vntol: float | None = None
    abstol: float | None = None


@dataclass(frozen=True)
class Netlist:
    """A parsed netlist: title, compiled circuit, the ``.tran`` card, the warnings raised, the
    ``.options`` fracprop uses, and the integration method of ``.options method=``
    (``"trap"``, ``"gear"`` or ``"euler"``; ``None`` when the deck names none, and
    `simulate`'s default, ``"trap"``, applies). ``notes`` are the warnings as `NetlistNote`
    (each with its file and line); ``warnings`` are their texts."""

    title: str
    circuit: Circuit
    tran: Tran | None
    warnings: tuple[str, ...] = ()
    options: Options = Options()
    method: str | None = None
    notes: tuple[NetlistNote, ...] = ()

    def __str__(self) -> str:
        lines = [f"Netlist {self.title!r}"]
        if self.tran is None:
            lines.append("  no .tran card")
        else:
            uic = " UIC" if self.tran.uic else ""
            lines.append(f"  .tran {self.tran.tstep:.6g} {self.tran.tstop:.6g}{uic}")
        if self.method is not None:
            lines.append(f"  .options method={self.method}")
        if self.warnings:
            lines.append(f"  {len(self.warnings)} warning(s)")
        lines.append(str(self.circuit))
        return "\n".join(lines)
