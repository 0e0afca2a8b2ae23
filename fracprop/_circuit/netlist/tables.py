"""The netlist's tables: which cards, models, model parameters and source functions exist."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..laws import AbstractLaw
from .result import Place

_UNSUPPORTED_ELEMENTS = {
    "M": "MOSFET; fractional memristors are R cards with an FMEM model",
    "Q": "bipolar transistor",
    "J": "JFET",
    "Z": "MESFET",
    "E": "voltage-controlled voltage source",
    "F": "current-controlled current source",
    "G": "voltage-controlled current source",
    "H": "current-controlled voltage source",
    "K": "coupled inductors",
    "B": "behavioural source",
    "S": "voltage-controlled switch",
    "W": "current-controlled switch",
    "T": "transmission line",
    "O": "transmission line",
    "U": "transmission line",
}


_OPTIONS_CARDS = {".options", ".option", ".opt"}


#: Cards that do not change a transient analysis (or that fracprop does not honour), ignored
#: with a warning.
_IGNORED_DOT_CARDS = {
    ".op",
    ".print",
    ".plot",
    ".save",
    ".probe",
    ".meas",
    ".measure",
    ".ic",
    ".nodeset",
    ".temp",
    ".ac",
    ".dc",
    ".noise",
    ".sens",
    ".four",
    ".fourier",
    ".fft",
    ".disto",
    ".pz",
    ".tf",
    ".width",
}


#: Cards that belong to the deck, not inside a subcircuit.
_DECK_CARDS = {".tran", ".options", ".option", ".opt", ".title"}


_SUPPORTED = (
    "supported cards are R, C, L, V, I, D, X and .model/.subckt/.param/.func/.include/.lib/"
    ".tran/.options/.title/.end (and .op/.print/.plot/.save/.probe/.meas/.ac/.dc/.noise/.four/"
    ".ic/.control ..., which are ignored)"
)


#: Marks a model parameter with no default.
REQUIRED = object()


@dataclass(frozen=True)
class ModelType:
    """One ``.model`` type: the element card that uses it, its parameters and its builder call.

    ``params`` maps each parameter to its default (`REQUIRED`: none); a ``law`` entry names
    the shape of a nonlinear law (`fracprop.Linear` by default) and ``scale`` is the parameter
    that scales it. ``add(builder, name, a, b, params, law)`` adds one element. A ``spice``
    model takes SPICE's parameter names: those fracprop does not use are accepted with a
    warning (SPICE decks carry many), and messages spell parameters upper-case.
    """

    card: str
    params: Mapping[str, object]
    add: Callable[..., object]
    scale: str | None = None
    spice: bool = False


#: Every model type by its (upper-case) name: the one table from model types to builders.
MODEL_TYPES: dict[str, ModelType] = {
    "D": ModelType(
        "D",
        {"is": 1e-14, "n": 1.0},
        lambda b, name, a, c, p, law: b.diode(name, a, c, is_=p["is"], n=p["n"]),
        spice=True,
    ),
    "FMEM": ModelType(
        "R",
        {"g": REQUIRED, "alpha": REQUIRED, "law": "linear", "psi0": 1.0},
        lambda b, name, a, c, p, law: b.memristor(name, a, c, g=p["g"], alpha=p["alpha"], law=law),
        scale="psi0",
    ),
    "FCAP": ModelType(
        "C",
        {"c": REQUIRED, "alpha": REQUIRED},
        lambda b, name, a, c, p, law: b.cpe(name, a, c, c=p["c"], alpha=p["alpha"]),
    ),
    "NCAP": ModelType(
        "C",
        {"c": REQUIRED, "law": "linear", "v0": 1.0},
        lambda b, name, a, c, p, law: b.capacitor(name, a, c, p["c"], law=law),
        scale="v0",
    ),
    "NIND": ModelType(
        "L",
        {"l": REQUIRED, "law": "linear", "phi0": 1.0},
        lambda b, name, a, c, p, law: b.inductor(name, a, c, p["l"], law=law),
        scale="phi0",
    ),
}


@dataclass(frozen=True)
class ElementCard:
    """One two-terminal element card letter (sources are read by their own rules).

    ``quantity`` names what a plain number on the card is, and ``add(builder, name, a, b,
    value)`` adds that element; ``None`` for cards that always name a model. ``ic``: the card
    may carry ``IC=value`` (accepted with a warning).
    """

    quantity: str | None = None
    add: Callable[..., object] | None = None
    ic: bool = False

    def models(self, letter: str) -> tuple[str, ...]:
        """The model types a card of this ``letter`` accepts."""
        return tuple(k for k, m in MODEL_TYPES.items() if m.card == letter)


#: Every two-terminal element card by its letter: the one table from card letters to builders.
ELEMENT_CARDS: dict[str, ElementCard] = {
    "R": ElementCard("resistance", lambda b, name, a, c, v: b.resistor(name, a, c, r=v)),
    "C": ElementCard("capacitance", lambda b, name, a, c, v: b.capacitor(name, a, c, v), ic=True),
    "L": ElementCard("inductance", lambda b, name, a, c, v: b.inductor(name, a, c, v), ic=True),
    "D": ElementCard(),
}

#: Independent-source card letters.
SOURCE_CARDS = "VI"


_TRANSIENT_FUNCTIONS = ("sin", "pulse", "pwl")


_UNSUPPORTED_FUNCTIONS = ("exp", "sffm", "am", "trnoise", "trrandom", "pat")


@dataclass
class _Model:
    name: str
    type: str
    place: Place
    params: dict[str, float] = field(default_factory=dict)
    law: AbstractLaw | None = None
