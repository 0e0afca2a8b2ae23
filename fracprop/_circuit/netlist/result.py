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
    `simulate`'s default, ``"trap"``, applies)."""

    title: str
    circuit: Circuit
    tran: Tran | None
    warnings: tuple[str, ...] = ()
    options: Options = Options()
    method: str | None = None

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
