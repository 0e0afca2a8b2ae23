"""``.param``, ``.global_param`` and ``.func``: the parameters and functions of the deck and of
each subcircuit instance, resolved by dependency."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .expressions import (
    BUILTINS,
    Environment,
    Expression,
    ExpressionError,
    Function,
    evaluate,
    parse_expression,
)
from .lexer import _Card

if TYPE_CHECKING:
    from .parser import _Parser

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
_FUNC = re.compile(r"\.func\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)\s*(?:=\s*)?(.*)$", re.I)


def unquote(text: str) -> str:
    """An expression without the braces or single quotes around it (``{a + 1}``, ``'a + 1'``).

    Braces elsewhere group like parentheses."""
    text = text.strip()
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1]
    if len(text) >= 2 and text[0] == "{" and text[-1] == "}" and "{" not in text[1:-1]:
        return text[1:-1]
    return text


def split_assignments(text: str) -> tuple[str, list[tuple[str, str]]]:
    """``"a=1 b = {a*2} c='a + b'"`` into ``("", [("a", "1"), ("b", "{a*2}"), ...])``: the text
    before the first ``name=`` and each name with its value. A value runs to the next ``name=``
    outside braces, parentheses and quotes, so it may contain blanks and commas."""
    starts: list[re.Match[str]] = []
    depth = 0
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            quoted = ch != "'"
        elif ch == "'":
            quoted = True
        elif ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
        elif depth == 0 and (i == 0 or text[i - 1] in " \t,"):
            match = _ASSIGNMENT.match(text, i)
            if match is not None:
                starts.append(match)
                i = match.end()
                continue
        i += 1
    head = text[: starts[0].start()] if starts else text
    pairs = []
    for k, match in enumerate(starts):
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        pairs.append((match.group(1), text[match.end() : end].strip().rstrip(",").strip()))
    return head.strip(), pairs


class Scope(Environment):
    """The parameters and functions visible in the deck (the global scope) or in one
    subcircuit instance, in front of those of the scope ``parent``.

    A parameter is kept as its expression until it is first needed, so that definitions may
    come in any order; a definition that needs itself is an error naming the cycle.
    """

    def __init__(self, p: _Parser, parent: Scope | None, instance: str = ""):
        self.p = p
        self.parent = parent
        self.instance = instance  # the subcircuit instance, for messages ("" for the deck)
        self.definitions: dict[str, tuple[str, Expression, _Card]] = {}
        self.values: dict[str, float] = {}
        self.given: dict[str, _Card] = {}  # values set by an instance card
        self.functions: dict[str, tuple[Function, _Card]] = {}
        self.resolving: list[str] = []

    # -- definitions ----------------------------------------------------------------------------
    def define(self, card: _Card, name: str, text: str, what: str) -> None:
        """Define parameter ``name`` as the expression ``text`` (parsed now, evaluated when
        first needed)."""
        key = name.lower()
        if not text:
            raise self.p.error(card, f"{what} {name}= has no value in {card.text!r}")
        first = self.definitions[key][2] if key in self.definitions else self.given.get(key)
        if first is not None:
            raise self.p.error(
                card,
                f"parameter {name!r} is defined twice in {card.text!r} (first at {first.place})",
            )
        try:
            expr = parse_expression(unquote(text))
        except ExpressionError as e:
            raise self.p.error(card, f"{what} {name}: {e} (in {card.text!r})") from None
        self.definitions[key] = (name, expr, card)

    def read_param_card(self, card: _Card) -> None:
        """``.param name=value ...`` (also ``.global_param``)."""
        keyword, rest = (card.text.split(None, 1) + [""])[:2]
        head, pairs = split_assignments(rest)
        if head or not pairs:
            at = f" at {head!r}" if head else ""
            raise self.p.error(
                card,
                f"expected '{keyword.lower()} name=value ...'{at} in {card.text!r}; an "
                "expression with blanks is written in braces or quotes: a={b + 1} or a='b + 1'",
            )
        for name, text in pairs:
            self.define(card, name, text, keyword.lower())

    def read_func_card(self, card: _Card) -> None:
        """``.func name(arg, ...) = {body}`` (``=`` optional, braces or quotes optional)."""
        match = _FUNC.match(card.text)
        usage = "write '.func name(x, y) = {expression}'"
        if match is None:
            raise self.p.error(card, f"cannot read {card.text!r}; {usage}")
        name, arglist, body = match.group(1), match.group(2), match.group(3).strip()
        key = name.lower()
        params = [a.strip() for a in re.split(r"[,\s]+", arglist.strip()) if a.strip()]
        for param in params:
            if not _NAME.fullmatch(param):
                raise self.p.error(card, f".func {name}: bad argument name {param!r}; {usage}")
        lowered = [a.lower() for a in params]
        if len(set(lowered)) != len(lowered):
            raise self.p.error(card, f".func {name}: an argument is named twice in {card.text!r}")
        if key in BUILTINS:
            raise self.p.error(
                card,
                f".func {name} would replace the built-in function {key}(); choose another name",
            )
        if key in self.functions:
            first = self.functions[key][1]
            raise self.p.error(
                card, f".func {name} is defined twice (first at {first.place}) in {card.text!r}"
            )
        if not body:
            raise self.p.error(card, f".func {name} has no body; {usage}")
        try:
            expr = parse_expression(unquote(body))
        except ExpressionError as e:
            raise self.p.error(card, f".func {name}: {e} (in {card.text!r})") from None
        self.functions[key] = (Function(key, tuple(lowered), expr, self), card)

    # -- lookups (the expressions' Environment) -------------------------------------------------
    def value(self, name: str) -> float:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            if name in scope.definitions:
                return scope.resolve(name)
            scope = scope.parent
        raise ExpressionError(f"unknown parameter {name!r}; {self.known()}")

    def function(self, name: str) -> Function | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.functions:
                return scope.functions[name][0]
            scope = scope.parent
        return None

    def has(self, name: str) -> bool:
        """Whether a parameter ``name`` is visible here."""
        key = name.lower()
        scope: Scope | None = self
        while scope is not None:
            if key in scope.values or key in scope.definitions:
                return True
            scope = scope.parent
        return False

    def known(self) -> str:
        names: list[str] = []
        scope: Scope | None = self
        while scope is not None:
            for key in (*scope.values, *scope.definitions):
                if key not in names:
                    names.append(key)
            scope = scope.parent
        if not names:
            return "no parameters are defined (define them with .param name=value)"
        shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
        return f"the defined parameters are {shown}"

    def resolve(self, key: str) -> float:
        name, expr, card = self.definitions[key]
        if key in self.resolving:
            cycle = [self.definitions[k][0] for k in self.resolving[self.resolving.index(key) :]]
            raise self.p.error(
                card,
                f"recursive parameter definition: {' → '.join([*cycle, name])} (in {card.text!r})",
                instance=self.instance,
            )
        self.resolving.append(key)
        try:
            value = evaluate(expr, self, lambda message: self.p.warn(card, message))
        except ExpressionError as e:
            raise self.p.error(
                card, f"parameter {name}: {e} (in {card.text!r})", instance=self.instance
            ) from None
        finally:
            self.resolving.pop()
        self.values[key] = value
        return value

    def resolve_all(self) -> None:
        """Evaluate every parameter defined here, so that a bad one is reported even if unused."""
        for key in self.definitions:
            if key not in self.values:
                self.resolve(key)

    def evaluate(self, card: _Card, text: str, what: str) -> float:
        """The value of the expression ``text`` written on ``card``."""
        try:
            expr = parse_expression(unquote(text))
            return evaluate(expr, self, lambda message: self.p.warn(card, message))
        except ExpressionError as e:
            raise self.p.error(card, f"{what}: {e} (in {card.text!r})") from None
