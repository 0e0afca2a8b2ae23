r"""Read circuits from SPICE-style netlists (a subset of SPICE/ngspice syntax).

`parse_netlist` turns the text of a deck into a `Netlist`: its title, the compiled `Circuit`, the
``.tran`` card (if any) and the warnings raised while reading. `load_netlist` does the same for a
file. Errors are `NetlistError` (a `ValueError`) with the line number and the offending text;
ignored constructs produce `NetlistWarning` (a `UserWarning`), also collected in
``Netlist.warnings``.

Example::

    RC low-pass                     <- line 1 is always the title
    V1 in 0 PULSE(0 1 0 1u 1u 0.5m 1m)
    R1 in out 1k
    C1 out 0 1uF
    .tran 1u 2m
    .end

General rules
-------------
* **The first line is the title**, never a card, even when it looks like one (or is blank).
* **Case-insensitive.** Card letters, keywords, model names and node names are case-insensitive;
  node names are stored lower-case. Element names keep the spelling of the deck, but two names
  that differ only in case are duplicates.
* **Ground** is node ``0`` or ``gnd``.
* **Comments**: a line whose first non-blank character is ``*`` is a comment. ``;`` starts a
  comment anywhere on a line, and so does a ``$`` standing alone (preceded and followed by a
  blank, as in ``R1 a b 1k $ load``). Blank lines are ignored.
* **Continuation**: a line starting with ``+`` continues the previous card (comment and blank
  lines may come in between). Errors report the card's first line.
* **Separators**: blanks and commas separate fields; parentheses may be glued to a word or not
  (``SIN(0 1 1k)``, ``SIN (0 1 1k)`` and ``SIN(0, 1, 1k)`` are the same); ``=`` may have blanks
  around it.
* ``.model`` cards may come before or after the elements that use them.

Numbers
-------
Numbers are engineering numbers (`parse_value`): an integer or decimal with an optional exponent
(``1e3``, ``2.5``, ``.5``, ``-3``, ``1.5E-7``), then an optional scale factor, then optional unit
letters, which are ignored:

====== ========= ====== =========
suffix factor    suffix factor
====== ========= ====== =========
``T``  1e12      ``m``  1e-3
``G``  1e9       ``u``  1e-6 (also ``µ``)
``MEG`` 1e6      ``n``  1e-9
``k``  1e3       ``p``  1e-12
``mil`` 25.4e-6  ``f``  1e-15
====== ========= ====== =========

Suffixes are case-insensitive, so ``M`` is *milli* like ``m``; write ``MEG`` for mega. Letters
after the number (and after its scale factor) are ignored: ``10V`` = 10, ``60Hz`` = 60, ``1mF`` =
1e-3, ``0.01pA`` = 1e-14, ``1kohm`` = 1000. As in SPICE, a unit letter that is itself a scale
factor is read as one: ``1F`` is one *femto*\ farad, write ``1`` for one farad. Anything other than
letters after the number (``1x2``, ``1k2``, ``10%``) is an error.

Element cards
-------------
``n+`` and ``n-`` are node names. Current flows from ``n+`` through the element to ``n-``.

``Rname n+ n- value``
    Linear resistor of ``value`` ohms (must be positive). As in ngspice, the value of an ``R``,
    ``C`` or ``L`` card may also be written ``r=value``, ``c=value`` or ``l=value``.
``Rname n+ n- MODEL``
    Fractional memristor, with ``MODEL`` a ``.model`` of type ``FMEM`` (below).
``Cname n+ n- value [IC=v]``
    Linear capacitor of ``value`` farads. ``IC=`` is accepted and ignored with a warning.
``Cname n+ n- MODEL [IC=v]``
    ``MODEL`` of type ``FCAP`` (constant-phase element) or ``NCAP`` (nonlinear capacitor).
``Lname n+ n- value [IC=i]``
    Linear inductor of ``value`` henries. ``IC=`` is accepted and ignored with a warning.
``Lname n+ n- MODEL [IC=i]``
    ``MODEL`` of type ``NIND`` (nonlinear inductor).
``Dname anode cathode MODEL``
    Shockley diode, with ``MODEL`` a ``.model`` of type ``D``.
``Vname n+ n- SPEC`` and ``Iname n+ n- SPEC``
    Independent voltage source (``v(n+) − v(n-)`` is imposed) and current source (the current
    flows from ``n+`` through the source to ``n-``). ``SPEC`` is made of:

    * ``value`` or ``DC value``: a constant;
    * ``SIN(VO VA FREQ [TD [THETA [PHASE]]])``: ``VO + VA·exp(−THETA·(t−TD))·sin(2π·FREQ·(t−TD)
      + PHASE·π/180)`` after ``TD`` (defaults ``TD = THETA = PHASE = 0``);
    * ``PULSE(V1 V2 [TD [TR [TF [PW [PER]]]]])``: trapezoidal pulses. As in ngspice, ``TD``
      defaults to 0, ``TR`` and ``TF`` to the ``.tran`` step when omitted or zero, ``PW`` and
      ``PER`` to the ``.tran`` stop time when omitted or zero. Without a ``.tran`` card, ``TR``
      and ``TF`` default to 0 (an instantaneous edge) and ``PW`` and ``PER`` to infinity;
    * ``PWL(t1 v1 t2 v2 ...)``: piecewise linear, held constant outside the points; the times
      must increase strictly;
    * ``AC mag [phase]``: ignored with a warning (there is no small-signal analysis).

    The parentheses of a function may be omitted (``PULSE 0 1 1u``). When a line has both a DC
    value and a transient function, the transient function is used (as in SPICE's ``.tran``).
    A source with no value at all is 0 (with a warning), as in ngspice.

Any other element letter (``X``, ``M``, ``Q``, ``J``, ``E``, ``F``, ``G``, ``H``, ``K``, ``B``,
``S``, ``W``, ``T`` ...) is an error. Extra fields on an element card (such as ``TC=`` or ``M=``)
are errors too, except ``IC=`` on capacitors and inductors.

Model cards
-----------
``.model NAME TYPE(param=value param=value ...)``; the parentheses are optional and may be
separated from ``TYPE`` by a blank, and parameters may be separated by commas. Parameter names are
case-insensitive. Values are engineering numbers, except ``law``, which takes a law name.

``D`` (diode, used by ``D`` cards): ``i = IS·(exp(v/(N·Vt)) − 1)``, with SPICE's ``Vt`` at 27 °C
    and ``gmin = 1e-12`` S in parallel.

    * ``IS``: saturation current in amperes (default 1e-14);
    * ``N``: emission coefficient (default 1).

    Every other SPICE diode parameter (``RS``, ``CJO``, ``VJ``, ``M``, ``TT``, ``BV``, ``IBV``,
    ``EG``, ``XTI`` ...) is accepted and ignored, with one warning per parameter.

``FMEM`` (fractional memristor, used by ``R`` cards): ``i = D^{1−α}[g·s(Ψ)]`` with
    ``Ψ = I^{1−α} v`` (fractional integral of the voltage, in V·s^{1−α}).

    * ``g`` (required): the small-signal conductance in siemens (> 0);
    * ``alpha`` (required): the order α, in (0, 1];
    * ``law``: the shape ``s`` (default ``linear``: the element is then a resistor of
      conductance ``g``; with α = 1 it is the nonlinear resistor ``i = g·s(v)``);
    * ``psi0``: the law's scale, in the units of Ψ (V·s^{1−α}); default 1, unused by ``linear``.

``FCAP`` (fractional capacitor / constant-phase element, used by ``C`` cards):
    ``i = c·ᶜD^α v``, impedance ``1/(c·s^α)``.

    * ``c`` (required): the pseudo-capacitance in F·s^{α−1} (> 0);
    * ``alpha`` (required): the order α, in (0, 1] (α = 1 is an ordinary capacitor).

``NCAP`` (nonlinear capacitor, used by ``C`` cards): ``q = c·s(v)``.

    * ``c`` (required): the small-signal capacitance in farads (> 0);
    * ``law``: the shape ``s`` (default ``linear``);
    * ``v0``: the law's scale in volts (default 1); with ``tanh`` the charge saturates at
      ``±c·v0``.

``NIND`` (nonlinear inductor, used by ``L`` cards): ``i = s(Φ)/l`` with flux ``Φ = ∫v dt``.

    * ``l`` (required): the small-signal inductance in henries (> 0);
    * ``law``: the shape ``s`` (default ``linear``);
    * ``phi0``: the law's scale in webers (V·s, default 1); with ``sinh`` or ``cubic`` the core
      saturates (the current grows fast) beyond ``|Φ| ≈ phi0``; with ``tanh`` the current
      saturates at ``±phi0/l``.

An unknown parameter of ``FMEM``, ``FCAP``, ``NCAP`` or ``NIND``, a missing required one, a
duplicated one, or a model type other than these five is an error.

Laws
----
Every law is a shape with ``s(0) = 0`` and ``s'(0) = 1``, so ``g``, ``c`` and ``l`` are always the
small-signal values at the origin, and the scale says where the element departs from linearity:

* ``linear``: ``s(x) = x`` (no scale);
* ``tanh``: ``s(x) = scale·tanh(x/scale)``, saturating at ``±scale``;
* ``sinh``: ``s(x) = scale·sinh(x/scale)``, growing exponentially beyond ``|x| ≈ scale``;
* ``cubic``: ``s(x) = x·(1 + (x/scale)²)``, hardening beyond ``|x| ≈ scale``.

``x`` is Ψ for a memristor (scale ``psi0``), the voltage for a capacitor (scale ``v0``) and the
flux for an inductor (scale ``phi0``). Scales must be positive.

Control cards
-------------
``.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]``
    Becomes ``Netlist.tran = Tran(tstep, tstop, uic)``. A nonzero ``TSTART`` is ignored with a
    warning (results start at t = 0); ``TMAX`` is ignored. At most one ``.tran`` card.
``.title TEXT``
    Replaces the title.
``.end``
    Ends the deck; everything after it is ignored.
``.op``, ``.options``/``.option``/``.opt``, ``.print``, ``.plot``, ``.save``, ``.probe``,
``.meas``/``.measure``, ``.ic``, ``.nodeset``, ``.temp``, ``.ac``, ``.dc``, ``.noise``
    Ignored with a warning.
``.control`` ... ``.endc``
    The whole block is skipped with a warning.

Any other dot-card (``.subckt``, ``.include``, ``.param`` ...) is an error.

Errors
------
A message starts with ``line N: `` (or ``SOURCE, line N: `` when a ``source`` other than the
default is given, such as a file name) and quotes the offending text. Structural errors found
when the circuit is compiled (a node with no DC path to ground, a loop of voltage sources, no
elements) concern no single line and start with ``SOURCE: ``.
"""

from __future__ import annotations

import math
import os
import re
import warnings as _warnings
from dataclasses import dataclass, field
from pathlib import Path

from ._circuit import Circuit, CircuitBuilder, CircuitError
from ._laws import LAWS, AbstractLaw, Linear
from ._waveforms import DC, PWL, AbstractWaveform, Pulse, Sin

__all__ = [
    "Netlist",
    "NetlistError",
    "NetlistWarning",
    "Tran",
    "load_netlist",
    "parse_netlist",
    "parse_value",
]

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
class Netlist:
    """A parsed netlist: title, compiled circuit, the ``.tran`` card and the warnings raised."""

    title: str
    circuit: Circuit
    tran: Tran | None
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [f"Netlist {self.title!r}"]
        if self.tran is None:
            lines.append("  no .tran card")
        else:
            uic = " UIC" if self.tran.uic else ""
            lines.append(f"  .tran {self.tran.tstep:.6g} {self.tran.tstop:.6g}{uic}")
        if self.warnings:
            lines.append(f"  {len(self.warnings)} warning(s)")
        lines.append(str(self.circuit))
        return "\n".join(lines)


# -- engineering numbers -------------------------------------------------------------------------

_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(.*)", re.DOTALL)
_UNIT_LETTERS = re.compile(r"[A-Za-zµμ]*")
_SCALES = {
    "t": 1e12,
    "g": 1e9,
    "k": 1e3,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,  # micro sign
    "μ": 1e-6,  # Greek mu
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}


def _starts_like_number(token: str) -> bool:
    return _NUMBER.match(token) is not None


def parse_value(token: str) -> float:
    """Read an engineering number such as ``1k``, ``2.2uF``, ``1MEG``, ``60Hz`` or ``1e-3``.

    Scale factors (case-insensitive): ``T`` 1e12, ``G`` 1e9, ``MEG`` 1e6, ``k`` 1e3, ``m``/``M``
    1e-3, ``mil`` 25.4e-6, ``u`` (or ``µ``) 1e-6, ``n`` 1e-9, ``p`` 1e-12, ``f`` 1e-15. Letters
    after the number and its scale factor are units and are ignored.

    **Raises** `NetlistError` when the token does not start with a number or has something other
    than letters after it.
    """
    text = token.strip()
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise NetlistError(
            f"{token!r} is not a number; expected an engineering number such as 1k, 2.2u or 1e-3"
        )
    number, rest = match.groups()
    if not _UNIT_LETTERS.fullmatch(rest):
        raise NetlistError(
            f"{token!r} is not a number: {rest!r} follows {number!r}; only a scale factor "
            "(such as k, u, meg) and unit letters (such as V, Hz) may follow a number"
        )
    suffix = rest.lower()
    if suffix.startswith("meg"):
        scale = 1e6
    elif suffix.startswith("mil"):
        scale = 25.4e-6
    elif suffix and suffix[0] in _SCALES:
        scale = _SCALES[suffix[0]]
    else:
        scale = 1.0
    value = float(number) * scale
    if not math.isfinite(value):
        raise NetlistError(f"{token!r} is not a finite number")
    return value


# -- netlist structure ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[()=]|[^\s(),=]+")
_DOLLAR_COMMENT = re.compile(r"(^|\s)\$(\s|$)")

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
class _Card:
    """One logical card: continuation lines joined, comments removed."""

    line: int
    text: str

    @property
    def tokens(self) -> list[str]:
        return _TOKEN.findall(self.text)


@dataclass
class _Model:
    name: str
    type: str
    line: int
    params: dict[str, float] = field(default_factory=dict)
    law: AbstractLaw | None = None


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("*"):
        return ""
    line = line.split(";", 1)[0]
    match = _DOLLAR_COMMENT.search(line)
    if match is not None:
        line = line[: match.start()]
    return line.strip()


class _Parser:
    """Reads one netlist in two passes: cards and models first, then elements."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.title = ""
        self.tran: Tran | None = None
        self.tran_line = 0
        self.models: dict[str, _Model] = {}
        self.warnings: list[tuple[int, str]] = []  # (line, message)

    # -- messages -------------------------------------------------------------------------------
    def where(self, line: int) -> str:
        if self.source == DEFAULT_SOURCE:
            return f"line {line}"
        return f"{self.source}, line {line}"

    def error(self, line: int, message: str) -> NetlistError:
        if line == 2 and not self.title:
            message += (
                " (note: the first line of a netlist is always its title, and it is blank here)"
            )
        return NetlistError(f"{self.where(line)}: {message}")

    def warn(self, line: int, message: str) -> None:
        self.warnings.append((line, f"{self.where(line)}: {message}"))

    def value(self, card: _Card, token: str, what: str) -> float:
        try:
            return parse_value(token)
        except NetlistError as e:
            raise self.error(card.line, f"{what}: {e} (in {card.text!r})") from None

    # -- pass 0: lines into cards ---------------------------------------------------------------
    def split_cards(self) -> list[_Card]:
        lines = self.text.lstrip("\ufeff").splitlines()
        if not self.text.strip():
            raise NetlistError(f"{self.source}: empty netlist")
        self.title = lines[0].strip()
        cards: list[_Card] = []
        control_line = 0  # first line of an open .control block
        for number, raw in enumerate(lines[1:], start=2):
            line = _strip_comment(raw)
            keyword = line.split()[0].lower() if line else ""
            if control_line:
                if keyword == ".endc":
                    control_line = 0
                continue
            if not line:
                continue
            if line.startswith("+"):
                if not cards:
                    raise self.error(
                        number, f"continuation line {line!r} has no card before it to continue"
                    )
                cards[-1].text += " " + line[1:].strip()
                continue
            if keyword == ".end":
                break
            if keyword == ".control":
                control_line = number
                self.warn(number, "'.control' ... '.endc' block ignored")
                continue
            cards.append(_Card(number, line))
        if control_line:
            raise self.error(control_line, "'.control' block has no '.endc'")
        return cards

    # -- pass 1: control cards and models -------------------------------------------------------
    def read_control_cards(self, cards: list[_Card]) -> list[_Card]:
        """Handle dot-cards; return the element cards."""
        elements = []
        for card in cards:
            keyword = card.text.split()[0].lower()
            if keyword == ".model":
                self.read_model(card)
            elif keyword == ".tran":
                self.read_tran(card)
            elif keyword == ".title":
                self.title = card.text[len(".title") :].strip()
            elif keyword in _IGNORED_DOT_CARDS:
                self.warn(card.line, f"{card.text!r} ignored")
            elif keyword[0] in _ELEMENT_LETTERS.lower():
                elements.append(card)
            else:
                hint = _UNSUPPORTED_ELEMENTS.get(keyword[0].upper())
                what = f" ({hint})" if hint and not keyword.startswith(".") else ""
                raise self.error(card.line, f"unknown card {card.text!r}{what}; {_SUPPORTED}")
        return elements

    def read_tran(self, card: _Card) -> None:
        if self.tran is not None:
            raise self.error(
                card.line,
                f"second .tran card {card.text!r}; the first is on line {self.tran_line}",
            )
        tokens = card.tokens[1:]
        uic = any(t.lower() == "uic" for t in tokens)
        numbers = [t for t in tokens if t.lower() != "uic"]
        if not 2 <= len(numbers) <= 4:
            raise self.error(
                card.line,
                f"{card.text!r}: expected '.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]'",
            )
        names = ("TSTEP", "TSTOP", "TSTART", "TMAX")
        values = [
            self.value(card, t, f".tran {n}")
            for n, t in zip(names[: len(numbers)], numbers, strict=True)
        ]
        tstep, tstop = values[0], values[1]
        tstart = values[2] if len(values) > 2 else 0.0
        if tstep <= 0 or tstop <= 0:
            raise self.error(card.line, f"{card.text!r}: TSTEP and TSTOP must be positive")
        if not 0 <= tstart < tstop:
            raise self.error(card.line, f"{card.text!r}: TSTART must lie in [0, TSTOP)")
        if tstart != 0:
            self.warn(
                card.line,
                f"TSTART={numbers[2]} in {card.text!r} ignored; results start at t = 0",
            )
        self.tran = Tran(tstep=tstep, tstop=tstop, uic=uic)
        self.tran_line = card.line

    def read_model(self, card: _Card) -> None:
        tokens = card.tokens
        if len(tokens) < 3 or tokens[1] in "()=" or tokens[2] in "()=":
            raise self.error(
                card.line, f"{card.text!r}: expected '.model NAME TYPE(param=value ...)'"
            )
        name, kind = tokens[1], tokens[2].upper()
        if kind not in _MODEL_TYPES:
            raise self.error(
                card.line,
                f"model {name!r} has unknown type {tokens[2]!r} in {card.text!r}; "
                f"supported model types are {', '.join(_MODEL_TYPES)}",
            )
        if name.lower() in self.models:
            first = self.models[name.lower()].line
            raise self.error(card.line, f"model {name!r} is defined twice (first on line {first})")
        pairs = self.model_pairs(card, name, tokens[3:])
        model = _Model(name=name, type=kind, line=card.line)
        if kind == "D":
            self.fill_diode(card, model, pairs)
        else:
            self.fill_fracprop_model(card, model, pairs)
        self.models[name.lower()] = model

    def model_pairs(self, card: _Card, name: str, tokens: list[str]) -> list[tuple[str, str]]:
        """``( k = v k = v )`` (parentheses optional) into ``[(k, v), ...]`` with lower-case k."""
        if tokens and tokens[0] == "(":
            if tokens[-1] != ")":
                raise self.error(card.line, f"model {name!r}: missing ')' in {card.text!r}")
            tokens = tokens[1:-1]
        pairs = []
        seen = set()
        for i in range(0, len(tokens), 3):
            key, equals, value = (tokens[i : i + 3] + ["", "", ""])[:3]
            if key in "()=" or equals != "=" or value in "()=":
                raise self.error(
                    card.line,
                    f"model {name!r}: expected 'param=value' at {' '.join(tokens[i:])!r} "
                    f"in {card.text!r}",
                )
            if key.lower() in seen:
                raise self.error(
                    card.line, f"model {name!r}: parameter {key!r} is given twice in {card.text!r}"
                )
            seen.add(key.lower())
            pairs.append((key.lower(), value))
        return pairs

    def fill_diode(self, card: _Card, model: _Model, pairs: list[tuple[str, str]]) -> None:
        model.params = dict(_DIODE_DEFAULTS)
        for key, token in pairs:
            if key in _DIODE_DEFAULTS:
                value = self.value(card, token, f"model {model.name!r} parameter {key.upper()}")
                self.check_positive(card, model, key.upper(), value)
                model.params[key] = value
            else:
                self.warn(
                    card.line,
                    f"diode model {model.name!r}: parameter {key.upper()}={token} is not "
                    "used by fracprop and is ignored",
                )

    def fill_fracprop_model(self, card: _Card, model: _Model, pairs: list[tuple[str, str]]) -> None:
        spec = _MODEL_PARAMETERS[model.type]
        given = dict(pairs)
        for key in given:
            if key not in spec:
                raise self.error(
                    card.line,
                    f"model {model.name!r} ({model.type}): unknown parameter {key!r} in "
                    f"{card.text!r}; its parameters are {', '.join(spec)}",
                )
        for key, default in spec.items():
            if key == "law":
                continue
            if key in given:
                what = f"model {model.name!r} parameter {key}"
                value = self.value(card, given[key], what)
            elif default is _REQUIRED:
                raise self.error(
                    card.line,
                    f"model {model.name!r} ({model.type}): missing required parameter "
                    f"{key!r} in {card.text!r}",
                )
            else:
                value = default
            if key == "alpha":
                if not 0 < value <= 1:
                    raise self.error(
                        card.line,
                        f"model {model.name!r}: alpha={given[key]} must lie in (0, 1] "
                        f"in {card.text!r}",
                    )
            else:
                self.check_positive(card, model, key, value)
            model.params[key] = value
        if "law" in spec:
            model.law = self.make_law(card, model, given)

    def make_law(self, card: _Card, model: _Model, given: dict[str, str]) -> AbstractLaw:
        law_name = given.get("law", "linear").lower()
        if law_name not in LAWS:
            raise self.error(
                card.line,
                f"model {model.name!r}: unknown law {given['law']!r} in {card.text!r}; "
                f"choose one of {', '.join(LAWS)}",
            )
        scale_key = _SCALE_PARAMETER[model.type]
        if law_name == "linear":
            if scale_key in given:
                self.warn(
                    card.line,
                    f"model {model.name!r}: {scale_key} has no effect with law=linear",
                )
            return Linear()
        return LAWS[law_name](model.params[scale_key])

    def check_positive(self, card: _Card, model: _Model, key: str, value: float) -> None:
        if not value > 0:
            raise self.error(
                card.line,
                f"model {model.name!r}: {key}={value:g} must be positive in {card.text!r}",
            )

    # -- pass 2: elements -----------------------------------------------------------------------
    def build(self, elements: list[_Card]) -> Circuit:
        builder = CircuitBuilder(self.title)
        first_line: dict[str, int] = {}
        for card in elements:
            name = card.tokens[0]
            if name.lower() in first_line:
                raise self.error(
                    card.line,
                    f"duplicate element name {name!r} in {card.text!r} "
                    f"(first defined on line {first_line[name.lower()]})",
                )
            try:
                self.add_element(card, builder)
            except NetlistError:
                raise
            except ValueError as e:  # CircuitError from the builder, or a waveform's ValueError
                raise self.error(card.line, f"{e} (in {card.text!r})") from None
            first_line[name.lower()] = card.line
        if not elements:
            raise NetlistError(
                f"{self.source}: the netlist has no element cards (only the title line "
                f"{self.title!r} and control cards); the first line is always the title"
            )
        try:
            return builder.build()
        except CircuitError as e:
            raise NetlistError(f"{self.source}: {e}") from None

    def add_element(self, card: _Card, builder: CircuitBuilder) -> None:
        tokens = card.tokens
        name = tokens[0]
        letter = name[0].upper()
        if len(tokens) < 3 or any(t in "()=" for t in tokens[1:3]):
            raise self.error(
                card.line,
                f"{name}: missing node names in {card.text!r}; expected '{name} n+ n- ...'",
            )
        a, b = tokens[1].lower(), tokens[2].lower()
        rest = tokens[3:]
        if letter in "RCL":
            self.add_two_terminal(card, builder, name, letter, a, b, rest)
        elif letter == "D":
            self.add_diode(card, builder, name, a, b, rest)
        elif letter == "V":
            builder.vsource(name, a, b, self.source_waveform(card, name, rest))
        else:
            builder.isource(name, a, b, self.source_waveform(card, name, rest))

    def add_two_terminal(self, card, builder, name, letter, a, b, rest) -> None:
        quantity = _QUANTITY[letter]
        if letter in "CL":
            rest = self.drop_initial_condition(card, name, rest)
        if len(rest) >= 3 and rest[0].upper() == letter and rest[1] == "=":
            rest = rest[2:]  # ngspice's "R1 a b r=1k"
        if not rest:
            raise self.error(
                card.line,
                f"{name}: missing {quantity} value in {card.text!r}; write "
                f"'{name} n+ n- value' or '{name} n+ n- MODEL'",
            )
        token = rest[0]
        if len(rest) > 1:
            raise self.error(
                card.line,
                f"{name}: unexpected {' '.join(rest[1:])!r} after {token!r} in {card.text!r}",
            )
        if _starts_like_number(token):
            value = self.value(card, token, f"{name} {quantity}")
            if letter == "R":
                builder.resistor(name, a, b, r=value)
            elif letter == "C":
                builder.capacitor(name, a, b, value)
            else:
                builder.inductor(name, a, b, value)
            return
        model = self.model_for(card, name, letter, token)
        p = model.params
        if model.type == "FMEM":
            builder.memristor(name, a, b, g=p["g"], alpha=p["alpha"], law=model.law)
        elif model.type == "FCAP":
            builder.cpe(name, a, b, c=p["c"], alpha=p["alpha"])
        elif model.type == "NCAP":
            builder.capacitor(name, a, b, p["c"], law=model.law)
        else:  # NIND
            builder.inductor(name, a, b, p["l"], law=model.law)

    def drop_initial_condition(self, card: _Card, name: str, rest: list[str]) -> list[str]:
        """Remove ``IC=value`` (warning) from the fields of a C or L card."""
        for i in range(len(rest) - 2):
            if rest[i].lower() == "ic" and rest[i + 1] == "=":
                self.warn(
                    card.line,
                    f"{name}: IC={rest[i + 2]} ignored (fracprop starts from its own "
                    "operating point or from rest)",
                )
                return rest[:i] + rest[i + 3 :]
        return rest

    def add_diode(self, card, builder, name, a, b, rest) -> None:
        if not rest:
            raise self.error(
                card.line,
                f"{name}: missing model name in {card.text!r}; write '{name} anode cathode MODEL'",
            )
        if len(rest) > 1:
            raise self.error(
                card.line,
                f"{name}: unexpected {' '.join(rest[1:])!r} after the model name in "
                f"{card.text!r}; write '{name} anode cathode MODEL'",
            )
        model = self.model_for(card, name, "D", rest[0])
        builder.diode(name, a, b, is_=model.params["is"], n=model.params["n"])

    def model_for(self, card: _Card, name: str, letter: str, token: str) -> _Model:
        allowed = _MODELS_FOR[letter]
        model = self.models.get(token.lower())
        if model is None:
            if letter == "D":
                problem = f"no .model named {token!r} is defined"
            else:
                problem = f"{token!r} is not a number, and no .model named {token!r} is defined"
            raise self.error(card.line, f"{name}: {problem} (in {card.text!r})")
        if model.type not in allowed:
            raise self.error(
                card.line,
                f"{name}: model {model.name!r} (line {model.line}) has type {model.type}, but "
                f"{letter} cards need a model of type {' or '.join(allowed)} "
                f"(in {card.text!r})",
            )
        return model

    # -- sources --------------------------------------------------------------------------------
    def source_waveform(self, card: _Card, name: str, rest: list[str]) -> AbstractWaveform:
        dc = None
        function = None  # (function name, its arguments)
        i = 0
        while i < len(rest):
            token = rest[i]
            word = token.lower()
            if word == "dc":
                if i + 1 >= len(rest) or not _starts_like_number(rest[i + 1]):
                    raise self.error(card.line, f"{name}: DC without a value in {card.text!r}")
                dc = self.value(card, rest[i + 1], f"{name} DC value")
                i += 2
            elif word == "ac":
                i += 1
                taken = 0
                while i < len(rest) and taken < 2 and _starts_like_number(rest[i]):
                    i += 1
                    taken += 1
                self.warn(card.line, f"{name}: AC specification ignored in {card.text!r}")
            elif word in _TRANSIENT_FUNCTIONS:
                if function is not None:
                    raise self.error(
                        card.line,
                        f"{name}: two transient functions ({function[0].upper()} and "
                        f"{token.upper()}) in {card.text!r}",
                    )
                args, i = self.function_arguments(card, name, token, rest, i + 1)
                function = (word, args)
            elif word in _UNSUPPORTED_FUNCTIONS:
                raise self.error(
                    card.line,
                    f"{name}: source function {token.upper()} is not supported in "
                    f"{card.text!r}; use SIN, PULSE or PWL",
                )
            elif _starts_like_number(token) and dc is None:
                dc = self.value(card, token, f"{name} value")
                i += 1
            else:
                raise self.error(
                    card.line,
                    f"{name}: unexpected {token!r} in the source specification {card.text!r}",
                )
        if function is not None:
            return self.transient_waveform(card, name, *function)
        if dc is None:
            self.warn(card.line, f"{name}: source has no value; DC 0 assumed")
            dc = 0.0
        return DC(dc)

    def function_arguments(self, card, name, function, rest, i) -> tuple[list[float], int]:
        """Arguments of ``FUNC(a b c)`` or ``FUNC a b c`` starting at ``rest[i]``."""
        what = f"{name} {function.upper()} argument"
        args = []
        if i < len(rest) and rest[i] == "(":
            i += 1
            while i < len(rest) and rest[i] != ")":
                if rest[i] in "(=":
                    raise self.error(card.line, f"{name}: unexpected {rest[i]!r} in {card.text!r}")
                args.append(self.value(card, rest[i], what))
                i += 1
            if i >= len(rest):
                raise self.error(
                    card.line, f"{name}: missing ')' after {function.upper()} in {card.text!r}"
                )
            return args, i + 1
        while i < len(rest) and _starts_like_number(rest[i]):
            args.append(self.value(card, rest[i], what))
            i += 1
        return args, i

    def transient_waveform(self, card, name, function, args) -> AbstractWaveform:
        def arity_error(expected):
            return self.error(
                card.line,
                f"{name}: {function.upper()} takes {expected}; got {len(args)} value(s) in "
                f"{card.text!r}",
            )

        if function == "sin":
            if not 3 <= len(args) <= 6:
                raise arity_error("(VO VA FREQ [TD [THETA [PHASE]]])")
            return Sin(*args)
        if function == "pulse":
            if not 2 <= len(args) <= 7:
                raise arity_error("(V1 V2 [TD [TR [TF [PW [PER]]]]])")
            return self.pulse(args)
        if len(args) < 2 or len(args) % 2:
            raise arity_error("pairs of values (t1 v1 t2 v2 ...)")
        return PWL(args[0::2], args[1::2])

    def pulse(self, args: list[float]) -> Pulse:
        """ngspice's defaults: TR, TF = TSTEP and PW, PER = TSTOP when omitted or zero."""
        v1, v2 = args[0], args[1]
        td, tr, tf, pw, per = args[2:] + [0.0] * (7 - len(args))
        if self.tran is None:
            tstep, tstop = 0.0, math.inf
        else:
            tstep, tstop = self.tran.tstep, self.tran.tstop
        tr = tr or tstep
        tf = tf or tstep
        pw = pw or tstop
        per = per or tstop
        return Pulse(v1, v2, td=td, tr=tr, tf=tf, pw=pw, per=per)

    # -- everything -----------------------------------------------------------------------------
    def parse(self) -> Netlist:
        cards = self.split_cards()
        elements = self.read_control_cards(cards)
        circuit = self.build(elements)
        in_line_order = sorted(self.warnings, key=lambda item: item[0])
        return Netlist(self.title, circuit, self.tran, tuple(m for _, m in in_line_order))


def _emit(netlist: Netlist) -> Netlist:
    for message in netlist.warnings:
        _warnings.warn(message, NetlistWarning, stacklevel=3)
    return netlist


def parse_netlist(text: str, *, source: str = DEFAULT_SOURCE) -> Netlist:
    """Parse the text of a SPICE-style netlist (syntax in the module documentation).

    ``source`` names the text in error messages (a file name, say). Warnings are issued with
    `warnings.warn` (category `NetlistWarning`) and also returned in ``Netlist.warnings``.

    **Raises** `NetlistError` for anything that cannot be read or does not make a valid circuit.
    """
    return _emit(_Parser(text, source).parse())


def load_netlist(path: str | os.PathLike) -> Netlist:
    """Read and parse a netlist file; error messages name the file."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return _emit(_Parser(text, str(path)).parse())
