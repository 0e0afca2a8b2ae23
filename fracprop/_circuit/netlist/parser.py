"""The netlist reader: cards to a `Circuit` through `CircuitBuilder`."""

from __future__ import annotations

import math
import os
import warnings as _warnings
from pathlib import Path

from ..builder import CircuitBuilder
from ..circuit import Circuit, CircuitError
from ..integration import METHOD_NAMES, METHODS
from ..waveforms import DC, PWL, AbstractWaveform, Pulse, Sin
from .lexer import _Card, _strip_comment
from .models import read_model
from .numbers import _starts_like_number, parse_value
from .result import DEFAULT_SOURCE, Netlist, NetlistError, NetlistWarning, Options, Tran
from .tables import (
    _IGNORED_DOT_CARDS,
    _OPTIONS_CARDS,
    _SUPPORTED,
    _TRANSIENT_FUNCTIONS,
    _UNSUPPORTED_ELEMENTS,
    _UNSUPPORTED_FUNCTIONS,
    ELEMENT_CARDS,
    MODEL_TYPES,
    SOURCE_CARDS,
    _Model,
)

# The options fracprop uses besides METHOD/MAXORD (the tolerances of the time-error control).
_USED_OPTIONS = ("reltol", "vntol", "abstol")


class _Parser:
    """Reads one netlist in two passes: cards and models first, then elements."""

    def __init__(self, text: str, source: str):
        self.text = text
        self.source = source
        self.title = ""
        self.tran: Tran | None = None
        self.tran_line = 0
        self.options: dict[str, float] = {}
        self.models: dict[str, _Model] = {}
        self.method: str | None = None
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
                read_model(self, card)
            elif keyword == ".tran":
                self.read_tran(card)
            elif keyword in _OPTIONS_CARDS:
                self.read_options(card)
            elif keyword == ".title":
                self.title = card.text[len(".title") :].strip()
            elif keyword in _IGNORED_DOT_CARDS:
                self.warn(card.line, f"{card.text!r} ignored")
            elif keyword[0].upper() in ELEMENT_CARDS or keyword[0].upper() in SOURCE_CARDS:
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

    def read_options(self, card: _Card) -> None:
        """``.options name=value ...``: ``method`` (``trap``, ``gear``, ``euler``), ``maxord=2``,
        and RELTOL, VNTOL and ABSTOL (positive numbers); every other option is ignored with
        a warning."""
        tokens = card.tokens[1:]
        pairs: list[tuple[str, str | None]] = []
        k = 0
        while k < len(tokens):
            if k + 1 < len(tokens) and tokens[k + 1] == "=":
                if k + 2 >= len(tokens) or tokens[k + 2] in "()=":
                    raise self.error(
                        card.line, f"option {tokens[k]}= has no value in {card.text!r}"
                    )
                pairs.append((tokens[k], tokens[k + 2]))
                k += 3
            else:
                pairs.append((tokens[k], None))
                k += 1
        ignored = []
        for key, value in pairs:
            lower = key.lower()
            if lower == "method":
                name = (value or "").lower()
                if name not in METHODS:
                    choices = ", ".join(METHOD_NAMES)
                    raise self.error(
                        card.line,
                        f"option method={value!r} in {card.text!r} is not an integration "
                        f"method; use method= one of {choices}",
                    )
                self.method = METHODS[name].name
            elif lower == "maxord":
                order = self.value(card, value or "", "option maxord") if value else None
                if order != 2:
                    raise self.error(
                        card.line,
                        f"option maxord={value} in {card.text!r}: only maxord=2 is supported "
                        "(trap and gear are of order 2; use method=euler for first order)",
                    )
            elif lower in _USED_OPTIONS:
                if value is None:
                    raise self.error(
                        card.line,
                        f"option {key} needs a value, e.g. {lower}=1e-3 (in {card.text!r})",
                    )
                number = self.value(card, value, f".options {lower}")
                if not (math.isfinite(number) and number > 0):
                    raise self.error(
                        card.line,
                        f".options {lower}={value} must be a positive number (in {card.text!r})",
                    )
                self.options[lower] = number
            else:
                ignored.append(key if value is None else f"{key}={value}")
        if ignored:
            self.warn(card.line, f".options {' '.join(ignored)} ignored")

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
        if letter == "V":
            builder.vsource(name, a, b, self.source_waveform(card, name, rest))
        elif letter == "I":
            builder.isource(name, a, b, self.source_waveform(card, name, rest))
        else:
            self.add_two_terminal(card, builder, name, letter, a, b, rest)

    def add_two_terminal(self, card, builder, name, letter, a, b, rest) -> None:
        """An element card ``NAME a b VALUE`` or ``NAME a b MODEL`` (`ELEMENT_CARDS`)."""
        spec = ELEMENT_CARDS[letter]
        quantity = spec.quantity
        if spec.ic:
            rest = self.drop_initial_condition(card, name, rest)
        if quantity is not None and len(rest) >= 3 and rest[0].upper() == letter and rest[1] == "=":
            rest = rest[2:]  # ngspice's "R1 a b r=1k"
        usage = (
            f"'{name} n+ n- value' or '{name} n+ n- MODEL'" if quantity else f"'{name} n+ n- MODEL'"
        )
        if not rest:
            what = f"{quantity} value" if quantity else "model name"
            raise self.error(card.line, f"{name}: missing {what} in {card.text!r}; write {usage}")
        token = rest[0]
        if len(rest) > 1:
            after = f"{token!r}" if quantity else "the model name"
            raise self.error(
                card.line,
                f"{name}: unexpected {' '.join(rest[1:])!r} after {after} in {card.text!r}"
                + ("" if quantity else f"; write {usage}"),
            )
        if quantity is not None and _starts_like_number(token):
            spec.add(builder, name, a, b, self.value(card, token, f"{name} {quantity}"))
            return
        model = self.model_for(card, name, letter, token)
        MODEL_TYPES[model.type].add(builder, name, a, b, model.params, model.law)

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

    def model_for(self, card: _Card, name: str, letter: str, token: str) -> _Model:
        allowed = ELEMENT_CARDS[letter].models(letter)
        model = self.models.get(token.lower())
        if model is None:
            if ELEMENT_CARDS[letter].quantity is None:
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
        return Netlist(
            self.title,
            circuit,
            self.tran,
            tuple(m for _, m in in_line_order),
            Options(**self.options),
            method=self.method,
        )


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
