"""The netlist reader: cards to a `Circuit` through `CircuitBuilder`."""

from __future__ import annotations

import math
import os
import re
import warnings as _warnings
from pathlib import Path

from ..builder import CircuitBuilder
from ..circuit import Circuit, CircuitError
from ..integration import METHOD_NAMES, METHODS
from ..waveforms import DC, PWL, AbstractWaveform, Pulse, Sin
from .files import DeckReader, read_text
from .lexer import _Card
from .models import read_model
from .numbers import _starts_like_number, parse_value
from .result import (
    DEFAULT_SOURCE,
    Netlist,
    NetlistError,
    NetlistNote,
    NetlistWarning,
    Options,
    Place,
    Tran,
)
from .scope import Scope
from .subckt import Context, Subckt, collect_definitions, fields_and_parameters
from .tables import (
    _DECK_CARDS,
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

# A value that is not a number but looks like an expression written without braces.
_LOOKS_LIKE_EXPRESSION = re.compile(r"[-+*/^()<>=!?]")


def _is_value(token: str) -> bool:
    """Whether ``token`` is written as a number: an engineering number or an expression in
    braces or single quotes."""
    return token[:1] in "{'" or _starts_like_number(token)


class _Parser:
    """Reads one netlist: its files into cards (``.include`` and ``.lib`` expanded), the
    subcircuit definitions out of them, the parameters, control cards and models, then the
    elements, with every subcircuit instance flattened."""

    def __init__(self, text: str, source: str, path: Path | None = None):
        self.text = text
        self.source = source
        self.path = path
        self.title = ""
        self.tran: Tran | None = None
        self.tran_card: _Card | None = None
        self.options: dict[str, float] = {}
        self.method: str | None = None
        self.notes: list[NetlistNote] = []
        self.noted: set[NetlistNote] = set()
        self.scope = Scope(self, None)
        self.ctx = Context(Subckt("", None), self.scope)
        self.builder = CircuitBuilder()
        self.first: dict[str, _Card] = {}  # flattened element name (lower-case) -> its card
        self.instances: dict[str, _Card] = {}  # flattened instance name (lower-case) -> card

    @property
    def models(self) -> dict[str, _Model]:
        """The ``.model`` cards of the deck or subcircuit instance being read."""
        return self.ctx.models

    # -- messages -------------------------------------------------------------------------------
    def error(
        self, at: _Card | Place, message: str, *, instance: str | None = None
    ) -> NetlistError:
        """A `NetlistError` at the card or place ``at``; inside a subcircuit instance, the
        message names it (``instance``: that of the card being read, unless given)."""
        place = at.place if isinstance(at, _Card) else at
        if (
            place.line == 2
            and not place.included_from
            and place.source == self.source
            and not self.title
        ):
            message += (
                " (note: the first line of a netlist is always its title, and it is blank here)"
            )
        instance = self.ctx.scope.instance if instance is None else instance
        if instance:
            message += f" [in {instance}]"
        return NetlistError(f"{place}: {message}")

    def warn(self, at: _Card | Place, message: str) -> None:
        note = NetlistNote(at.place if isinstance(at, _Card) else at, message)
        if note not in self.noted:  # a card of a subcircuit warns once, not once per instance
            self.noted.add(note)
            self.notes.append(note)

    def value(self, card: _Card, token: str, what: str) -> float:
        """The number written ``token`` on ``card``: an engineering number, or an expression
        in braces or single quotes."""
        if token[:1] in "{'":
            closing = "}" if token[0] == "{" else "'"
            if len(token) < 2 or token[-1] != closing:
                raise self.error(
                    card, f"{what}: {token!r} has no closing {closing!r} (in {card.text!r})"
                )
            return self.ctx.scope.evaluate(card, token, what)
        try:
            return parse_value(token)
        except NetlistError as e:
            hint = ""
            if _LOOKS_LIKE_EXPRESSION.search(token[1:]) or self.ctx.scope.has(token):
                hint = f"; an expression or a parameter is written in braces: {{{token}}}"
            raise self.error(card, f"{what}: {e}{hint} (in {card.text!r})") from None

    # -- control cards and models --------------------------------------------------------------
    def read_control_cards(self, cards: list[_Card], *, deck: bool = True) -> list[_Card]:
        """Handle the dot-cards of the deck (``deck``) or of a subcircuit instance; return the
        element cards. Parameters and functions come first, so that any card may use them."""
        scope = self.ctx.scope
        others = []
        for card in cards:
            keyword = card.keyword
            if keyword == ".param":
                scope.read_param_card(card)
            elif keyword == ".global_param":
                if not deck:
                    raise self.error(
                        card,
                        f"{card.text!r} inside a subcircuit; a .global_param belongs to the "
                        "deck (write .param for a parameter of the subcircuit)",
                    )
                scope.read_param_card(card)
            elif keyword == ".func":
                scope.read_func_card(card)
            else:
                others.append(card)
        elements = []
        for card in others:
            keyword = card.keyword
            letter = keyword[0].upper()
            if keyword in _DECK_CARDS and not deck:
                raise self.error(
                    card,
                    f"{card.text!r} inside a subcircuit; move it out of the "
                    f"'.subckt' ... '.ends' block",
                )
            if keyword == ".model":
                read_model(self, card)
            elif keyword == ".tran":
                self.read_tran(card)
            elif keyword in _OPTIONS_CARDS:
                self.read_options(card)
            elif keyword == ".title":
                self.title = card.text[len(".title") :].strip()
            elif keyword in _IGNORED_DOT_CARDS:
                self.warn(card, f"{card.text!r} ignored")
            elif letter in ELEMENT_CARDS or letter in SOURCE_CARDS or letter == "X":
                elements.append(card)
            else:
                hint = _UNSUPPORTED_ELEMENTS.get(letter)
                what = f" ({hint})" if hint and not keyword.startswith(".") else ""
                raise self.error(card, f"unknown card {card.text!r}{what}; {_SUPPORTED}")
        scope.resolve_all()
        return elements

    def read_tran(self, card: _Card) -> None:
        """``.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]``, and ``.tran TSTOP`` or
        ``.tran 0 TSTOP``, whose output step is TSTOP/50 (with a warning)."""
        if self.tran is not None:
            raise self.error(
                card,
                f"second .tran card {card.text!r}; the first is on {self.tran_card.place}",
            )
        tokens = card.tokens[1:]
        uic = any(t.lower() == "uic" for t in tokens)
        numbers = [t for t in tokens if t.lower() != "uic"]
        if not 1 <= len(numbers) <= 4:
            raise self.error(
                card,
                f"{card.text!r}: expected '.tran TSTEP TSTOP [TSTART [TMAX]] [UIC]' "
                "(or '.tran TSTOP')",
            )
        if len(numbers) == 1:
            numbers = ["0", *numbers]
            omitted = True
        else:
            omitted = False
        names = ("TSTEP", "TSTOP", "TSTART", "TMAX")
        values = [
            self.value(card, t, f".tran {n}")
            for n, t in zip(names[: len(numbers)], numbers, strict=True)
        ]
        tstep, tstop = values[0], values[1]
        tstart = values[2] if len(values) > 2 else 0.0
        if tstop <= 0:
            raise self.error(card, f"{card.text!r}: TSTOP must be positive")
        if tstep < 0:
            raise self.error(card, f"{card.text!r}: TSTEP must be positive (or 0 for TSTOP/50)")
        if not 0 <= tstart < tstop:
            raise self.error(card, f"{card.text!r}: TSTART must lie in [0, TSTOP)")
        if tstart != 0:
            self.warn(
                card,
                f"TSTART={numbers[2]} in {card.text!r} ignored; results start at t = 0",
            )
        if tstep == 0:
            tstep = tstop / 50
            self.warn(
                card,
                f"TSTEP {'omitted' if omitted else 'is 0'} in {card.text!r}: the output step "
                f"is TSTOP/50 = {tstep:g} s (ngspice's default largest internal step); write "
                "'.tran TSTEP TSTOP' to choose it",
            )
        self.tran = Tran(tstep=tstep, tstop=tstop, uic=uic)
        self.tran_card = card

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
                    raise self.error(card, f"option {tokens[k]}= has no value in {card.text!r}")
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
                        card,
                        f"option method={value!r} in {card.text!r} is not an integration "
                        f"method; use method= one of {choices}",
                    )
                self.method = METHODS[name].name
            elif lower == "maxord":
                order = self.value(card, value or "", "option maxord") if value else None
                if order != 2:
                    raise self.error(
                        card,
                        f"option maxord={value} in {card.text!r}: only maxord=2 is supported "
                        "(trap and gear are of order 2; use method=euler for first order)",
                    )
            elif lower in _USED_OPTIONS:
                if value is None:
                    raise self.error(
                        card,
                        f"option {key} needs a value, e.g. {lower}=1e-3 (in {card.text!r})",
                    )
                number = self.value(card, value, f".options {lower}")
                if not (math.isfinite(number) and number > 0):
                    raise self.error(
                        card,
                        f".options {lower}={value} must be a positive number (in {card.text!r})",
                    )
                self.options[lower] = number
            else:
                ignored.append(key if value is None else f"{key}={value}")
        if ignored:
            self.warn(card, f".options {' '.join(ignored)} ignored")

    # -- elements and subcircuit instances ------------------------------------------------------
    def build(self, elements: list[_Card]) -> Circuit:
        self.builder = CircuitBuilder(self.title)
        self.expand(elements)
        if not self.first:
            raise NetlistError(
                f"{self.source}: the netlist has no element cards (only the title line "
                f"{self.title!r} and control cards); the first line is always the title"
            )
        try:
            return self.builder.build()
        except CircuitError as e:
            raise NetlistError(f"{self.source}: {e}") from None

    def expand(self, elements: list[_Card]) -> None:
        """Add the element cards of the current context; flatten its ``X`` cards."""
        for card in elements:
            if card.keyword[0] == "x":
                self.instantiate(card)
                continue
            name = self.ctx.element(card.tokens[0])
            first = self.first.get(name.lower())
            if first is not None:
                raise self.error(
                    card,
                    f"duplicate element name {name!r} in {card.text!r} "
                    f"(first defined on {first.place})",
                )
            try:
                self.add_element(card, name)
            except NetlistError:
                raise
            except ValueError as e:  # CircuitError from the builder, or a waveform's ValueError
                raise self.error(card, f"{e} (in {card.text!r})") from None
            self.first[name.lower()] = card

    def nodes(self, card: _Card, tokens: list[str]) -> list[str]:
        """The flattened names of the nodes written ``tokens`` on ``card``."""
        for token in tokens:
            if token[:1] in "{'":
                raise self.error(
                    card, f"node name {token!r} in {card.text!r}: a node name is not an expression"
                )
        return [self.ctx.node(t.lower()) for t in tokens]

    def add_element(self, card: _Card, name: str) -> None:
        tokens = card.tokens
        letter = name[0].upper()
        if len(tokens) < 3 or any(t in "()=" for t in tokens[1:3]):
            raise self.error(
                card,
                f"{tokens[0]}: missing node names in {card.text!r}; "
                f"expected '{tokens[0]} n+ n- ...'",
            )
        a, b = self.nodes(card, tokens[1:3])
        rest = tokens[3:]
        if letter == "V":
            self.builder.vsource(name, a, b, self.source_waveform(card, name, rest))
        elif letter == "I":
            self.builder.isource(name, a, b, self.source_waveform(card, name, rest))
        else:
            self.add_two_terminal(card, self.builder, name, letter, a, b, rest)

    def instantiate(self, card: _Card) -> None:
        """``Xname nodes... SUBCKT [params:] [name=value ...]``: the cards of the subcircuit,
        read in a new context (ngspice's names: node ``n`` of ``X1`` is ``x1.n``, element
        ``R1`` of ``X1`` is ``R.X1.R1``)."""
        tokens = card.tokens
        label = tokens[0]
        usage = f"'{label} node1 node2 ... SUBCKT [name=value ...]'"
        positional, pairs = fields_and_parameters(self, card, tokens[1:], usage)
        if not positional:
            raise self.error(card, f"{label}: no subcircuit name in {card.text!r}; write {usage}")
        sub_name, nodes = positional[-1], positional[:-1]
        found = self.ctx.subckt(sub_name.lower())
        if found is None:
            visible = self.ctx.visible_subckts()
            listing = (
                f"the subcircuits defined are {', '.join(visible)}"
                if visible
                else "no .subckt is defined"
            )
            raise self.error(
                card, f"{label}: unknown subcircuit {sub_name!r} in {card.text!r}; {listing}"
            )
        definition, lexical = found
        if any(d is definition for d in self.ctx.stack):
            chain = [d.name for d in self.ctx.stack]
            chain = chain[next(k for k, d in enumerate(self.ctx.stack) if d is definition) :]
            raise self.error(
                card,
                f"{label}: subcircuit recursion {' → '.join([*chain, definition.name])} in "
                f"{card.text!r}; a subcircuit cannot contain an instance of itself",
            )
        if len(nodes) != len(definition.ports):
            raise self.error(
                card,
                f"{label}: {definition.describe()} has {len(definition.ports)} port(s) "
                f"({' '.join(definition.ports) or 'none'}), but {card.text!r} connects "
                f"{len(nodes)} node(s)",
            )
        names = f"{self.ctx.names}.{label}" if self.ctx.names else label
        first = self.instances.get(names.lower())
        if first is not None:
            raise self.error(
                card,
                f"duplicate subcircuit instance name {names!r} in {card.text!r} "
                f"(first defined on {first.place})",
            )
        self.instances[names.lower()] = card
        defaults = {n.lower(): n for n, _ in definition.params}
        given = {}
        for param, text in pairs:
            if param.lower() not in defaults:
                listing = ", ".join(defaults.values()) or "none"
                raise self.error(
                    card,
                    f"{label}: {definition.describe()} has no parameter {param!r} (its "
                    f"parameters are {listing}) in {card.text!r}",
                )
            given[param.lower()] = self.ctx.scope.evaluate(card, text, f"{label} {param}")
        scope = Scope(self, lexical.scope, f"{names}, an instance of {definition.name!r}")
        for param, default in definition.params:
            key = param.lower()
            if key in given:
                scope.values[key] = given[key]
                scope.given[key] = definition.card
            else:
                scope.define(definition.card, param, default, f"{definition.name} parameter")
        ports = dict(zip(definition.ports, self.nodes(card, nodes), strict=True))
        outer = self.ctx
        self.ctx = Context(
            definition,
            scope,
            parent=lexical,
            path=names.lower(),
            names=names,
            ports=ports,
            stack=(*outer.stack, definition),
        )
        try:
            self.expand(self.read_control_cards(definition.body, deck=False))
        finally:
            self.ctx = outer

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
            raise self.error(card, f"{name}: missing {what} in {card.text!r}; write {usage}")
        token = rest[0]
        if len(rest) > 1:
            after = f"{token!r}" if quantity else "the model name"
            raise self.error(
                card,
                f"{name}: unexpected {' '.join(rest[1:])!r} after {after} in {card.text!r}"
                + ("" if quantity else f"; write {usage}"),
            )
        if quantity is not None and _is_value(token):
            spec.add(builder, name, a, b, self.value(card, token, f"{name} {quantity}"))
            return
        model = self.model_for(card, name, letter, token)
        MODEL_TYPES[model.type].add(builder, name, a, b, model.params, model.law)

    def drop_initial_condition(self, card: _Card, name: str, rest: list[str]) -> list[str]:
        """Remove ``IC=value`` (warning) from the fields of a C or L card."""
        for i in range(len(rest) - 2):
            if rest[i].lower() == "ic" and rest[i + 1] == "=":
                self.warn(
                    card,
                    f"{name}: IC={rest[i + 2]} ignored (fracprop starts from its own "
                    "operating point or from rest)",
                )
                return rest[:i] + rest[i + 3 :]
        return rest

    def model_for(self, card: _Card, name: str, letter: str, token: str) -> _Model:
        allowed = ELEMENT_CARDS[letter].models(letter)
        model = self.ctx.model(token.lower())
        if model is None:
            if ELEMENT_CARDS[letter].quantity is None:
                problem = f"no .model named {token!r} is defined"
            else:
                problem = f"{token!r} is not a number, and no .model named {token!r} is defined"
                if self.ctx.scope.has(token):
                    problem += f" (a parameter is written in braces: {{{token}}})"
            raise self.error(card, f"{name}: {problem} (in {card.text!r})")
        if model.type not in allowed:
            raise self.error(
                card,
                f"{name}: model {model.name!r} ({model.place}) has type {model.type}, but "
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
                if i + 1 >= len(rest) or not _is_value(rest[i + 1]):
                    raise self.error(card, f"{name}: DC without a value in {card.text!r}")
                dc = self.value(card, rest[i + 1], f"{name} DC value")
                i += 2
            elif word == "ac":
                i += 1
                taken = 0
                while i < len(rest) and taken < 2 and _is_value(rest[i]):
                    i += 1
                    taken += 1
                self.warn(card, f"{name}: AC specification ignored in {card.text!r}")
            elif word in _TRANSIENT_FUNCTIONS:
                if function is not None:
                    raise self.error(
                        card,
                        f"{name}: two transient functions ({function[0].upper()} and "
                        f"{token.upper()}) in {card.text!r}",
                    )
                args, i = self.function_arguments(card, name, token, rest, i + 1)
                function = (word, args)
            elif word in _UNSUPPORTED_FUNCTIONS:
                raise self.error(
                    card,
                    f"{name}: source function {token.upper()} is not supported in "
                    f"{card.text!r}; use SIN, PULSE or PWL",
                )
            elif _is_value(token) and dc is None:
                dc = self.value(card, token, f"{name} value")
                i += 1
            else:
                raise self.error(
                    card,
                    f"{name}: unexpected {token!r} in the source specification {card.text!r}",
                )
        if function is not None:
            return self.transient_waveform(card, name, *function)
        if dc is None:
            self.warn(card, f"{name}: source has no value; DC 0 assumed")
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
                    raise self.error(card, f"{name}: unexpected {rest[i]!r} in {card.text!r}")
                args.append(self.value(card, rest[i], what))
                i += 1
            if i >= len(rest):
                raise self.error(
                    card, f"{name}: missing ')' after {function.upper()} in {card.text!r}"
                )
            return args, i + 1
        while i < len(rest) and _is_value(rest[i]):
            args.append(self.value(card, rest[i], what))
            i += 1
        return args, i

    def transient_waveform(self, card, name, function, args) -> AbstractWaveform:
        def arity_error(expected):
            return self.error(
                card,
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
        cards = DeckReader(self).read(self.text, self.source, self.path)
        deck = collect_definitions(self, cards)
        self.ctx = Context(deck, self.scope)
        elements = self.read_control_cards(deck.body)
        circuit = self.build(elements)
        # in reading order: by the place in the deck, an included file at its .include card
        notes = sorted(
            self.notes, key=lambda n: (*(line for _, line in n.place.included_from), n.place.line)
        )
        return Netlist(
            self.title,
            circuit,
            self.tran,
            tuple(str(n) for n in notes),
            Options(**self.options),
            method=self.method,
            notes=tuple(notes),
        )


def _emit(netlist: Netlist) -> Netlist:
    for message in netlist.warnings:
        _warnings.warn(message, NetlistWarning, stacklevel=3)
    return netlist


def parse_netlist(text: str, *, source: str = DEFAULT_SOURCE) -> Netlist:
    """Parse the text of a SPICE-style netlist (syntax in the module documentation).

    ``source`` names the text in error messages (a file name, say). The paths of
    ``.include`` and ``.lib`` cards are relative to the current directory. Warnings are issued
    with `warnings.warn` (category `NetlistWarning`) and also returned in ``Netlist.warnings``
    (as text) and ``Netlist.notes`` (as `NetlistNote`, with file and line).

    **Raises** `NetlistError` for anything that cannot be read or does not make a valid circuit.
    """
    return _emit(_Parser(text, source).parse())


def load_netlist(path: str | os.PathLike) -> Netlist:
    """Read and parse a netlist file; error messages name the file, and the paths of its
    ``.include`` and ``.lib`` cards are relative to its folder.

    The file may be UTF-8, UTF-8/UTF-16/UTF-32 with a byte-order mark, or else is read as
    Latin-1; lines may end in ``\\n``, ``\\r\\n`` or ``\\r``.

    **Raises** `FileNotFoundError` if ``path`` does not exist, `NetlistError` as
    `parse_netlist`.
    """
    path = Path(path)
    return _emit(_Parser(read_text(path), str(path), path).parse())
