"""``.subckt`` ... ``.ends`` definitions, and the context in which the cards of the deck or of
one subcircuit instance are read (ngspice manual, "Subcircuits")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..circuit import GROUND_NAMES
from .lexer import _Card
from .scope import Scope
from .tables import _Model

if TYPE_CHECKING:
    from .parser import _Parser

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(eq=False)
class Subckt:
    """One ``.subckt NAME ports... [params: name=value ...]`` definition (or the deck itself,
    with no ``card``): its body and the subcircuits defined inside it."""

    name: str
    card: _Card | None
    ports: tuple[str, ...] = ()  # lower-case
    params: tuple[tuple[str, str], ...] = ()  # (name, default) as written
    parent: Subckt | None = None
    body: list[_Card] = field(default_factory=list)
    subckts: dict[str, Subckt] = field(default_factory=dict)

    def describe(self) -> str:
        return f"subcircuit {self.name!r} ({self.card.place})" if self.card else "the deck"


def fields_and_parameters(p: _Parser, card: _Card, tokens: list[str], usage: str):
    """Split the tokens of an ``X`` card or a ``.subckt`` card into positional fields and
    ``name=value`` pairs (after an optional ``params:``)."""
    split: list[str] = []
    for token in tokens:
        if token.lower().startswith("params:") and len(token) > 7:
            split += [token[:7], token[7:]]
        else:
            split.append(token)
    tokens = split
    k = 0
    positional = []
    while k < len(tokens):
        if tokens[k].lower() == "params:" or (k + 1 < len(tokens) and tokens[k + 1] == "="):
            break
        if tokens[k] in "()=":
            raise p.error(card, f"unexpected {tokens[k]!r} in {card.text!r}; write {usage}")
        positional.append(tokens[k])
        k += 1
    if k < len(tokens) and tokens[k].lower() == "params:":
        k += 1
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    while k < len(tokens):
        name, equals, value = (tokens[k : k + 3] + ["", "", ""])[:3]
        if not _NAME.fullmatch(name) or equals != "=" or value in ("", "(", ")", "="):
            raise p.error(
                card,
                f"expected 'name=value' at {' '.join(tokens[k:])!r} in {card.text!r}; a value "
                "with blanks is written in braces: r={2 * rload}",
            )
        if name.lower() in seen:
            raise p.error(card, f"parameter {name!r} is given twice in {card.text!r}")
        seen.add(name.lower())
        pairs.append((name, value))
        k += 3
    return positional, pairs


def read_header(p: _Parser, card: _Card, parent: Subckt) -> Subckt:
    """A ``.subckt NAME ports... [params: name=value ...]`` card."""
    usage = "'.subckt NAME node1 node2 ... [params: name=value ...]'"
    positional, pairs = fields_and_parameters(p, card, card.tokens[1:], usage)
    if not positional:
        raise p.error(card, f"{card.text!r} names no subcircuit; write {usage}")
    name, ports = positional[0], [n.lower() for n in positional[1:]]
    for port in ports:
        if port in GROUND_NAMES:
            raise p.error(
                card,
                f"subcircuit {name!r}: ground ({port!r}) cannot be a port in {card.text!r}; "
                "ground is global, use it inside the subcircuit without a port",
            )
        if ports.count(port) > 1:
            raise p.error(card, f"subcircuit {name!r}: port {port!r} is listed twice")
    return Subckt(name, card, tuple(ports), tuple(pairs), parent)


def collect_definitions(p: _Parser, cards: list[_Card]) -> Subckt:
    """Take the ``.subckt`` ... ``.ends`` blocks (nested ones too) out of ``cards``: the deck's
    own cards are the body of the returned definition."""
    deck = Subckt("", None)
    open_: list[Subckt] = [deck]
    for card in cards:
        keyword = card.keyword
        if keyword == ".subckt":
            inner = open_[-1]
            definition = read_header(p, card, inner)
            key = definition.name.lower()
            if key in inner.subckts:
                first = inner.subckts[key].card
                raise p.error(
                    card,
                    f"subcircuit {definition.name!r} is defined twice (first at {first.place})",
                )
            inner.subckts[key] = definition
            open_.append(definition)
        elif keyword == ".ends":
            if len(open_) == 1:
                raise p.error(card, f"{card.text!r} has no '.subckt' before it")
            words = card.text.split()
            if len(words) > 1 and words[1].lower() != open_[-1].name.lower():
                raise p.error(
                    card,
                    f"{card.text!r} closes {words[1]!r}, but the open subcircuit is "
                    f"{open_[-1].name!r} ({open_[-1].card.place})",
                )
            open_.pop()
        else:
            open_[-1].body.append(card)
    if len(open_) > 1:
        last = open_[-1]
        raise p.error(last.card, f"subcircuit {last.name!r} has no '.ends'")
    return deck


@dataclass
class Context:
    """Where cards are being read: the deck, or one instance of a subcircuit.

    ``path`` is the instance path of node names (``"x1.x2"``, lower-case) and ``names`` that
    of element names (``"X1.X2"``, as written); ``ports`` maps the definition's ports to the
    nodes they are connected to; ``parent`` is the context where the definition was found
    (lexical scoping: parameters, models and subcircuits visible there are visible here).
    """

    definition: Subckt
    scope: Scope
    parent: Context | None = None
    path: str = ""
    names: str = ""
    ports: dict[str, str] = field(default_factory=dict)
    models: dict[str, _Model] = field(default_factory=dict)
    stack: tuple[Subckt, ...] = ()  # the subcircuits being expanded, outermost first

    def node(self, name: str) -> str:
        """The flattened name of node ``name`` (lower-case) of this context."""
        if name in GROUND_NAMES or not self.path:
            return name
        if name in self.ports:
            return self.ports[name]
        return f"{self.path}.{name}"

    def element(self, name: str) -> str:
        """The flattened name of an element, as ngspice writes it: ``R1`` in ``X1`` is
        ``R.X1.R1``."""
        return f"{name[0]}.{self.names}.{name}" if self.names else name

    def model(self, key: str) -> _Model | None:
        context: Context | None = self
        while context is not None:
            if key in context.models:
                return context.models[key]
            context = context.parent
        return None

    def subckt(self, key: str) -> tuple[Subckt, Context] | None:
        context: Context | None = self
        while context is not None:
            if key in context.definition.subckts:
                return context.definition.subckts[key], context
            context = context.parent
        return None

    def visible_subckts(self) -> list[str]:
        names: list[str] = []
        context: Context | None = self
        while context is not None:
            names += [d.name for d in context.definition.subckts.values()]
            context = context.parent
        return names
