"""The netlist's tables: which cards, models, model parameters and source functions exist."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..laws import AbstractLaw

_ELEMENT_LETTERS = "RCLDVI"


_UNSUPPORTED_ELEMENTS = {
    "X": "subcircuit instance",
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


_IGNORED_DOT_CARDS = {
    ".op",
    ".options",
    ".option",
    ".opt",
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
}


_SUPPORTED = (
    "supported cards are R, C, L, V, I, D and .model/.tran/.title/.end "
    "(and .op/.options/.print/.plot/.save/.probe/.meas/.ic/.control, which are ignored)"
)


_REQUIRED = object()


#: Parameters of the fracprop model types, with their defaults (``_REQUIRED``: no default).
_MODEL_PARAMETERS = {
    "FMEM": {"g": _REQUIRED, "alpha": _REQUIRED, "law": "linear", "psi0": 1.0},
    "FCAP": {"c": _REQUIRED, "alpha": _REQUIRED},
    "NCAP": {"c": _REQUIRED, "law": "linear", "v0": 1.0},
    "NIND": {"l": _REQUIRED, "law": "linear", "phi0": 1.0},
}


#: The parameter that is the scale of the law, per model type.
_SCALE_PARAMETER = {"FMEM": "psi0", "NCAP": "v0", "NIND": "phi0"}


_DIODE_DEFAULTS = {"is": 1e-14, "n": 1.0}


_MODEL_TYPES = ("D", *_MODEL_PARAMETERS)


#: Which model types each element letter accepts.
_MODELS_FOR = {"R": ("FMEM",), "C": ("FCAP", "NCAP"), "L": ("NIND",), "D": ("D",)}


_QUANTITY = {"R": "resistance", "C": "capacitance", "L": "inductance"}


_TRANSIENT_FUNCTIONS = ("sin", "pulse", "pwl")


_UNSUPPORTED_FUNCTIONS = ("exp", "sffm", "am", "trnoise", "trrandom", "pat")


@dataclass
class _Model:
    name: str
    type: str
    line: int
    params: dict[str, float] = field(default_factory=dict)
    law: AbstractLaw | None = None
