"""Expressions of ``.param``, ``.func`` and ``{...}`` values: a tokenizer, a recursive-descent
parser and an evaluator (never Python's ``eval``).

The operators, their precedence and the functions follow the ngspice manual ("Syntax of
expressions"), with two choices where the manual's table is silent or disagrees with ngspice
itself; both follow what ngspice 39 computes:

* the power operator binds tighter than a unary minus (``-2^2`` is −4, as in mathematics);
* ``^`` and ``**`` are ``pwr``, ``|x|^y`` (so ``(-2)^3`` is 8, with a warning; ``pow(x, y)`` is
  the signed power).

Equal-precedence binary operators group from the left, the power operator included
(``2^3^2`` is 64); the ternary operator groups from the right.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .numbers import parse_value
from .result import NetlistError


class ExpressionError(NetlistError):
    """An expression that cannot be read or evaluated; the netlist reader adds the card's place."""


# -- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Number:
    value: float
    start: int
    end: int


@dataclass(frozen=True)
class Name:
    name: str  # lower-case
    start: int
    end: int


@dataclass(frozen=True)
class Unary:
    op: str  # "-", "+" or "!"
    operand: Node
    start: int
    end: int


@dataclass(frozen=True)
class Binary:
    op: str  # "^" (also written "**"), "*", "/", "+", "-", "==", "!=", "<", "<=", ">", ">=", ...
    left: Node
    right: Node
    start: int
    end: int


@dataclass(frozen=True)
class Ternary:
    condition: Node
    then: Node
    otherwise: Node
    start: int
    end: int


@dataclass(frozen=True)
class Call:
    name: str  # lower-case
    args: tuple[Node, ...]
    start: int
    end: int


Node = Number | Name | Unary | Binary | Ternary | Call


@dataclass(frozen=True)
class Expression:
    """A parsed expression and the text it came from (for messages)."""

    text: str
    root: Node

    def source(self, node: Node) -> str:
        return self.text[node.start : node.end].strip()


# -- tokens --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z0-9_µμ]*)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>\*\*|==|!=|<>|<=|>=|&&|\|\||[-+*/^<>!?:(),{}])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExpressionError(
                f"syntax error in {text!r} at character {pos + 1}: unexpected {text[pos]!r}"
            )
        kind = match.lastgroup
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# -- parser --------------------------------------------------------------------------------------

_COMPARISONS = ("==", "!=", "<>", "<", "<=", ">", ">=")
_CLOSING = {"(": ")", "{": "}"}


class _Parser:
    """Recursive descent, one method per precedence level (lowest first)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.k = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.k]

    def at(self, *ops: str) -> bool:
        return self.token.kind == "op" and self.token.text in ops

    def take(self) -> _Token:
        token = self.token
        self.k += 1
        return token

    def fail(self, expected: str) -> ExpressionError:
        token = self.token
        found = "the end" if token.kind == "end" else repr(token.text)
        return ExpressionError(
            f"syntax error in {self.text!r} at character {token.start + 1}: expected "
            f"{expected}, found {found}"
        )

    def expect(self, op: str) -> _Token:
        if not self.at(op):
            raise self.fail(repr(op))
        return self.take()

    def parse(self) -> Node:
        if self.token.kind == "end":
            raise ExpressionError("empty expression")
        node = self.ternary()
        if self.token.kind != "end":
            raise self.fail("an operator")
        return node

    def ternary(self) -> Node:
        condition = self.logical_or()
        if not self.at("?"):
            return condition
        self.take()
        then = self.ternary()
        self.expect(":")
        otherwise = self.ternary()
        return Ternary(condition, then, otherwise, condition.start, otherwise.end)

    def binary_level(self, ops: Sequence[str], operand: Callable[[], Node]) -> Node:
        left = operand()
        while self.at(*ops):
            op = self.take().text
            right = operand()
            left = Binary(op, left, right, left.start, right.end)
        return left

    def logical_or(self) -> Node:
        return self.binary_level(("||",), self.logical_and)

    def logical_and(self) -> Node:
        return self.binary_level(("&&",), self.comparison)

    def comparison(self) -> Node:
        return self.binary_level(_COMPARISONS, self.additive)

    def additive(self) -> Node:
        return self.binary_level(("+", "-"), self.multiplicative)

    def multiplicative(self) -> Node:
        return self.binary_level(("*", "/"), self.unary)

    def unary(self) -> Node:
        if self.at("-", "+", "!"):
            op = self.take()
            operand = self.unary()
            return Unary(op.text, operand, op.start, operand.end)
        return self.power()

    def power(self) -> Node:
        base = self.atom()
        while self.at("^", "**"):
            self.take()
            exponent = self.exponent()
            base = Binary("^", base, exponent, base.start, exponent.end)
        return base

    def exponent(self) -> Node:
        if self.at("-", "+", "!"):
            op = self.take()
            operand = self.exponent()
            return Unary(op.text, operand, op.start, operand.end)
        return self.atom()

    def atom(self) -> Node:
        token = self.token
        if token.kind == "number":
            self.take()
            try:
                value = parse_value(token.text)
            except NetlistError as e:
                raise ExpressionError(
                    f"syntax error in {self.text!r} at character {token.start + 1}: {e}"
                ) from None
            return Number(value, token.start, token.end)
        if token.kind == "name":
            self.take()
            if not self.at("("):
                return Name(token.text.lower(), token.start, token.end)
            self.take()
            args: list[Node] = []
            if not self.at(")"):
                args.append(self.ternary())
                while self.at(","):
                    self.take()
                    args.append(self.ternary())
            if not self.at(")"):
                raise self.fail("',' or ')'")
            return Call(token.text.lower(), tuple(args), token.start, self.take().end)
        if self.at("(", "{"):
            opening = self.take()
            node = self.ternary()
            closing = _CLOSING[opening.text]
            if not self.at(closing):
                raise self.fail(repr(closing))
            return replace(node, start=opening.start, end=self.take().end)
        raise self.fail("a number, a name, '(' or a unary operator")


def parse_expression(text: str) -> Expression:
    """Parse ``text`` (without surrounding braces or quotes) into an `Expression`.

    **Raises** `ExpressionError` with the position of a syntax error.
    """
    try:
        return Expression(text, _Parser(text).parse())
    except RecursionError:
        raise ExpressionError(f"expression {text[:40]!r}... is nested too deeply") from None


# -- evaluation ----------------------------------------------------------------------------------


class Environment:
    """Where names in an expression get their values: parameters and ``.func`` functions."""

    def value(self, name: str) -> float:
        raise ExpressionError(f"unknown parameter {name!r}")

    def function(self, name: str) -> Function | None:
        return None


@dataclass(frozen=True)
class Function:
    """A ``.func name(args) = {body}``: evaluated in the environment that defines it."""

    name: str
    params: tuple[str, ...]
    body: Expression
    env: Environment


class _Bound(Environment):
    """A function's arguments, in front of the environment of its definition."""

    def __init__(self, function: Function, args: dict[str, float], active: tuple[str, ...]):
        self.inner = function.env
        self.args = args
        self.active = active

    def value(self, name: str) -> float:
        if name in self.args:
            return self.args[name]
        return self.inner.value(name)

    def function(self, name: str) -> Function | None:
        return self.inner.function(name)


def _truncate(x: float) -> float:
    return float(math.trunc(x))


def _nearest(x: float) -> float:
    return float(round(x))  # half-way cases to even, as ngspice's nint


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


def _signed_pow(x: float, y: float) -> float:
    return math.pow(x, y)


def _abs_pow(x: float, y: float) -> float:
    return math.pow(abs(x), y)


def _limit(x: float, lo: float, hi: float) -> float:
    if lo > hi:
        raise ExpressionError(f"limit(x, lo, hi) needs lo <= hi; got lo = {lo:g}, hi = {hi:g}")
    return min(max(x, lo), hi)


#: The built-in functions: name -> (number of arguments, implementation).
BUILTINS: dict[str, tuple[int, Callable[..., float]]] = {
    "sqrt": (1, math.sqrt),
    "exp": (1, math.exp),
    "log": (1, math.log),  # natural logarithm, as in ngspice
    "ln": (1, math.log),
    "log10": (1, math.log10),
    "abs": (1, abs),
    "sin": (1, math.sin),
    "cos": (1, math.cos),
    "tan": (1, math.tan),
    "asin": (1, math.asin),
    "acos": (1, math.acos),
    "atan": (1, math.atan),
    "arctan": (1, math.atan),
    "sinh": (1, math.sinh),
    "cosh": (1, math.cosh),
    "tanh": (1, math.tanh),
    "asinh": (1, math.asinh),
    "acosh": (1, math.acosh),
    "atanh": (1, math.atanh),
    "floor": (1, lambda x: float(math.floor(x))),
    "ceil": (1, lambda x: float(math.ceil(x))),
    "int": (1, _truncate),
    "nint": (1, _nearest),
    "sgn": (1, _sign),
    "pow": (2, _signed_pow),
    "pwr": (2, _abs_pow),
    "min": (2, min),
    "max": (2, max),
    "limit": (3, _limit),
    "if": (3, None),  # evaluated lazily: only the branch taken
    "ternary_fcn": (3, None),
}

#: ngspice's Monte-Carlo functions, which draw random numbers.
_RANDOM = ("gauss", "agauss", "unif", "aunif")


def _plural(n: int) -> str:
    return f"{n} argument" + ("" if n == 1 else "s")


class _Evaluator:
    def __init__(self, expr: Expression, env: Environment, warn: Callable[[str], None]):
        self.expr = expr
        self.env = env
        self.warn = warn

    def src(self, node: Node) -> str:
        return self.expr.source(node)

    def finite(self, node: Node, value: float, what: str | None = None) -> float:
        if not math.isfinite(value):
            what = what or repr(self.src(node))
            raise ExpressionError(f"{what} is not a finite real number (in {self.src(node)!r})")
        return value

    def eval(self, node: Node) -> float:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Name):
            return self.env.value(node.name)
        if isinstance(node, Unary):
            x = self.eval(node.operand)
            if node.op == "-":
                return -x
            if node.op == "!":
                return float(x == 0)
            return x
        if isinstance(node, Ternary):
            return self.eval(node.then if self.eval(node.condition) != 0 else node.otherwise)
        if isinstance(node, Binary):
            return self.binary(node)
        return self.call(node)

    def binary(self, node: Binary) -> float:
        op = node.op
        if op == "&&":
            return float(self.eval(node.left) != 0 and self.eval(node.right) != 0)
        if op == "||":
            return float(self.eval(node.left) != 0 or self.eval(node.right) != 0)
        a, b = self.eval(node.left), self.eval(node.right)
        if op == "+":
            return self.finite(node, a + b)
        if op == "-":
            return self.finite(node, a - b)
        if op == "*":
            return self.finite(node, a * b)
        if op == "/":
            if b == 0:
                raise ExpressionError(
                    f"division by zero in {self.src(node)!r} ({self.src(node.right)!r} is 0)"
                )
            return self.finite(node, a / b)
        if op == "^":
            return self.power(node, a, b)
        return float(
            {
                "==": a == b,
                "!=": a != b,
                "<>": a != b,
                "<": a < b,
                "<=": a <= b,
                ">": a > b,
                ">=": a >= b,
            }[op]
        )

    def power(self, node: Binary, a: float, b: float) -> float:
        if a == 0 and b < 0:
            raise ExpressionError(
                f"division by zero in {self.src(node)!r} (0 to the negative power {b:g})"
            )
        try:
            value = _abs_pow(a, b)
        except OverflowError:
            value = math.inf
        self.finite(node, value)
        if a < 0:
            try:
                signed = math.pow(a, b)
            except ValueError:
                signed = math.nan
            if signed != value:
                self.warn(
                    f"{self.src(node)!r} is |x|^y = {value:g} (x = {a:g}): ngspice's power "
                    "operator takes the magnitude of a negative base; write pow(x, y) for the "
                    "signed power"
                )
        return value

    def call(self, node: Call) -> float:
        name = node.name
        user = self.env.function(name)
        if user is not None:
            return self.call_user(node, user)
        if name not in BUILTINS:
            if name in _RANDOM:
                raise ExpressionError(
                    f"{name}() in {self.src(node)!r} is one of ngspice's Monte-Carlo functions, "
                    "which draw random numbers; write the nominal value instead"
                )
            raise ExpressionError(
                f"unknown function {name!r} in {self.src(node)!r}; the functions are "
                f"{', '.join(BUILTINS)} and those defined with .func"
            )
        arity, impl = BUILTINS[name]
        if len(node.args) != arity:
            hint = ""
            if name == "limit" and len(node.args) == 2:
                hint = (
                    " (ngspice's two-argument limit(nom, avar) is a Monte-Carlo function, "
                    "which fracprop does not have)"
                )
            raise ExpressionError(
                f"{name}() takes {_plural(arity)}, got {len(node.args)} in {self.src(node)!r}{hint}"
            )
        if impl is None:  # if(c, a, b) and ternary_fcn(c, a, b)
            condition, then, otherwise = node.args
            return self.eval(then if self.eval(condition) != 0 else otherwise)
        args = [self.eval(a) for a in node.args]
        try:
            value = impl(*args)
        except ExpressionError:
            raise
        except (ValueError, OverflowError):
            value = math.nan
        shown = ", ".join(f"{a:g}" for a in args)
        return self.finite(node, float(value), f"{name}({shown})")

    def call_user(self, node: Call, function: Function) -> float:
        if len(node.args) != len(function.params):
            raise ExpressionError(
                f"function {function.name}() takes {_plural(len(function.params))} "
                f"({', '.join(function.params)}), got {len(node.args)} in {self.src(node)!r}"
            )
        active = self.env.active if isinstance(self.env, _Bound) else ()
        if function.name in active:
            chain = " → ".join((*active, function.name))
            raise ExpressionError(f"recursive .func definition: {chain}")
        args = {p: self.eval(a) for p, a in zip(function.params, node.args, strict=True)}
        env = _Bound(function, args, (*active, function.name))
        return _Evaluator(function.body, env, self.warn).eval(function.body.root)


def evaluate(
    expr: Expression, env: Environment, warn: Callable[[str], None] = lambda message: None
) -> float:
    """The value of ``expr`` with names from ``env``; ``warn`` receives warnings.

    **Raises** `ExpressionError` for an unknown name or function, a wrong number of arguments,
    a division by zero, or a result that is not a finite real number.
    """
    try:
        return _Evaluator(expr, env, warn).eval(expr.root)
    except RecursionError:
        raise ExpressionError(f"expression {expr.text[:40]!r}... is nested too deeply") from None
