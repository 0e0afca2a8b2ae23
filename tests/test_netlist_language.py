"""The netlist language beyond single cards: expressions, .param/.func, .include/.lib,
subcircuits, .tran defaults, file encodings (no simulations)."""

import math
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fracprop._circuit.netlist import (
    NetlistError,
    NetlistWarning,
    Tran,
    load_netlist,
    parse_netlist,
)
from fracprop._circuit.netlist.expressions import (
    Environment,
    ExpressionError,
    evaluate,
    parse_expression,
)


def deck(body: str, title: str = "test deck") -> str:
    return title + "\n" + textwrap.dedent(body).strip("\n") + "\n"


def parse(body: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        return parse_netlist(deck(body))


def error_of(body: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        with pytest.raises(NetlistError) as info:
            parse_netlist(deck(body))
    exc = info.value
    assert exc.__cause__ is None
    return str(exc)


def assert_error(body: str, line: int, *texts: str) -> str:
    message = error_of(body)
    assert message.startswith(f"line {line}: "), message
    for text in texts:
        assert text in message, (text, message)
    return message


def get(netlist, name: str, parameter: str) -> float:
    return float(netlist.circuit.get(name, parameter))


class Params(Environment):
    def __init__(self, **values):
        self.values = values

    def value(self, name):
        if name in self.values:
            return self.values[name]
        return super().value(name)


def calc(text: str, **params) -> float:
    return evaluate(parse_expression(text), Params(**params))


def calc_error(text: str, **params) -> str:
    with pytest.raises(ExpressionError) as info:
        calc(text, **params)
    return str(info.value)


# -- expressions: values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("1 + 2 * 3", 1 + 2 * 3),
        ("(1 + 2) * 3", (1 + 2) * 3),
        ("8 / 2 / 2", 8 / 2 / 2),
        ("1 - 2 - 3", 1 - 2 - 3),
        ("2 * -3", 2 * -3),
        ("- - 2", 2.0),
        ("+3", 3.0),
        ("2 ** 3", 8.0),
        ("2 ^ 0.5", 2**0.5),
        ("2 ^ -1", 0.5),
        # ngspice 39: the power binds tighter than a unary minus, and groups from the left
        ("-2^2", -4.0),
        ("-x^2", -25.0),
        ("2^3^2", 64.0),
        ("1k", 1e3),
        ("2.2u * 1meg", 2.2),
        ("1e3k", 1e6),
        ("10mV + 5m", 0.015),
        (".5 + 5.", 5.5),
        ("1.5E-7", 1.5e-7),
        ("(2 < 3) + (2 <= 2)*10 + (3 > 2)*100 + (2 >= 3)*1000", 111.0),
        ("(2 == 2) + (2 != 2)*10 + (1 <> 2)*100", 101.0),
        ("1 < 2 < 3", 1.0),  # (1 < 2) < 3, as in C
        ("3 > 2 > 1", 0.0),
        ("1 + 1 == 2", 1.0),
        ("!0 + (1 && 0) + 2*(1 || 0)", 3.0),
        ("!1 + 3", 3.0),
        ("!(2 - 2)", 1.0),
        ("1 || 0 && 0", 1.0),
        ("0 && 1/0", 0.0),  # short-circuit: the division is not evaluated
        ("1 || 1/0", 1.0),
        ("1 ? 2 : 3", 2.0),
        ("0 ? 1 : 2 ? 3 : 4", 3.0),
        ("1 ? 0 ? 7 : 8 : 9", 8.0),  # groups from the right
        ("-2 < -1 ? 5 : 6", 5.0),
        ("x < 1 ? 1/(x - 5) : 2", 2.0),  # only the branch taken is evaluated
        ("sqrt(16)", 4.0),
        ("exp(1)", math.e),
        ("log(100)", math.log(100)),  # natural logarithm, as in ngspice
        ("ln(10)", math.log(10)),
        ("log10(1000)", 3.0),
        ("pow(-2, 3)", -8.0),
        ("pwr(-2, 3)", 8.0),
        ("pwr(2, 0.5)", 2**0.5),
        ("abs(-3)", 3.0),
        ("min(3, 1) + max(2, 7)*10", 71.0),
        ("sin(1) + cos(1) + tan(0.5)", math.sin(1) + math.cos(1) + math.tan(0.5)),
        ("atan(1)*4", math.pi),
        ("arctan(1)", math.atan(1)),
        ("asin(0.5) + acos(0.5)", math.pi / 2),
        ("sinh(1) + cosh(1) + tanh(1)", math.sinh(1) + math.cosh(1) + math.tanh(1)),
        ("floor(-2.5)*10 + ceil(2.1)", -27.0),
        ("int(-2.5) + int(2.7)", 0.0),
        ("nint(2.5)", 2.0),  # half-way cases to even, as ngspice's nint
        ("nint(-2.5)", -2.0),
        ("nint(3.5)", 4.0),
        ("sgn(-3) + 10*sgn(0) + 100*sgn(0.1)", 99.0),
        ("if(0, 1/0, 3)", 3.0),
        ("ternary_fcn(1, 2, 3)", 2.0),
        ("limit(5, 1, 3) + limit(-5, 1, 3) + limit(2, 1, 3)", 6.0),
        ("{1 + 2} * 3", 9.0),
        ("SQRT(X*5)", 5.0),
    ],
)
def test_expression_values(text, value):
    assert calc(text, x=5.0) == pytest.approx(value, rel=1e-14)


def test_negative_base_of_the_power_operator_warns():
    messages = []
    expr = parse_expression("(-2)^3 + (-2)^2")
    assert evaluate(expr, Environment(), messages.append) == 12.0
    assert len(messages) == 1  # (-2)^2 is 4 either way
    assert "'(-2)^3' is |x|^y = 8" in messages[0] and "pow(x, y)" in messages[0]


# -- expressions: a random-tree check against Python's arithmetic ---------------------------------

# precedence levels, lowest first, as the ngspice manual's table (power above unary minus)
TERNARY, OR, AND, COMPARE, ADD, MUL, UNARY, POWER, ATOM = range(9)
BINARY_LEVEL = {
    "||": OR,
    "&&": AND,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">="), COMPARE),
    "+": ADD,
    "-": ADD,
    "*": MUL,
    "/": MUL,
    "^": POWER,
    "**": POWER,
}
FUNCTIONS = {
    "sqrt": 1,
    "exp": 1,
    "log": 1,
    "abs": 1,
    "atan": 1,
    "tanh": 1,
    "floor": 1,
    "int": 1,
    "nint": 1,
    "sgn": 1,
    "min": 2,
    "max": 2,
    "pwr": 2,
    "if": 3,
    "limit": 3,
}
SCALES = {"": 1.0, "k": 1e3, "m": 1e-3, "u": 1e-6, "meg": 1e6}


class Undefined(Exception):
    """The reference evaluator's way of saying: fracprop must raise an error here."""


def finite(x: float) -> float:
    if not math.isfinite(x):
        raise Undefined
    return x


def reference(tree) -> float:
    kind = tree[0]
    if kind == "num":
        return tree[1]
    if kind == "unary":
        x = reference(tree[2])
        return {"-": -x, "+": x, "!": float(x == 0)}[tree[1]]
    if kind == "ternary":
        return reference(tree[2] if reference(tree[1]) != 0 else tree[3])
    if kind == "call":
        name, args = tree[1], tree[2]
        if name == "if":
            return reference(args[1] if reference(args[0]) != 0 else args[2])
        a = [reference(x) for x in args]
        try:
            value = {
                "sqrt": lambda: math.sqrt(a[0]),
                "exp": lambda: math.exp(a[0]),
                "log": lambda: math.log(a[0]),
                "abs": lambda: abs(a[0]),
                "atan": lambda: math.atan(a[0]),
                "tanh": lambda: math.tanh(a[0]),
                "floor": lambda: float(math.floor(a[0])),
                "int": lambda: float(math.trunc(a[0])),
                "nint": lambda: float(round(a[0])),
                "sgn": lambda: float(np.sign(a[0])),
                "min": lambda: min(a),
                "max": lambda: max(a),
                "pwr": lambda: abs(a[0]) ** a[1],
                "limit": lambda: min(max(a[0], a[1]), a[2]) if a[1] <= a[2] else math.nan,
            }[name]()
        except (ValueError, OverflowError, ZeroDivisionError):
            raise Undefined from None
        return finite(value)
    op, left = tree[1], reference(tree[2])
    if op == "&&":
        return float(left != 0 and reference(tree[3]) != 0)
    if op == "||":
        return float(left != 0 or reference(tree[3]) != 0)
    right = reference(tree[3])
    if op in ("^", "**"):
        try:
            return finite(abs(left) ** right)
        except (OverflowError, ZeroDivisionError):
            raise Undefined from None
    if op == "/" and right == 0:
        raise Undefined
    return finite(
        {
            "+": lambda: left + right,
            "-": lambda: left - right,
            "*": lambda: left * right,
            "/": lambda: left / right,
            "==": lambda: float(left == right),
            "!=": lambda: float(left != right),
            "<": lambda: float(left < right),
            "<=": lambda: float(left <= right),
            ">": lambda: float(left > right),
            ">=": lambda: float(left >= right),
        }[op]()
    )


def render(tree, draw_parens) -> tuple[str, int]:
    """Text for ``tree`` with the parentheses its precedence needs (and some more)."""

    def wrap(child, needed: bool) -> str:
        text, _ = render(child, draw_parens)
        return f"({text})" if needed or draw_parens() else text

    def level_of(child) -> int:
        return render(child, lambda: False)[1]

    kind = tree[0]
    if kind == "num":
        return tree[2], ATOM
    if kind == "unary":
        return f"{tree[1]} {wrap(tree[2], level_of(tree[2]) < UNARY)}", UNARY
    if kind == "ternary":
        condition = wrap(tree[1], level_of(tree[1]) <= TERNARY)
        return f"{condition} ? {wrap(tree[2], False)} : {wrap(tree[3], False)}", TERNARY
    if kind == "call":
        return f"{tree[1]}({', '.join(wrap(a, False) for a in tree[2])})", ATOM
    op = tree[1]
    level = BINARY_LEVEL[op]
    if level == POWER:  # base and exponent are atoms
        left = wrap(tree[2], level_of(tree[2]) < ATOM)
        right = wrap(tree[3], level_of(tree[3]) < ATOM)
    else:  # left-associative
        left = wrap(tree[2], level_of(tree[2]) < level)
        right = wrap(tree[3], level_of(tree[3]) <= level)
    return f"{left} {op} {right}", level


@st.composite
def numbers(draw):
    mantissa = draw(st.sampled_from(["0", "1", "2", "3", "0.5", "2.5", "10", ".25", "1e-3"]))
    suffix = draw(st.sampled_from(list(SCALES)))
    return ("num", float(mantissa) * SCALES[suffix], mantissa + suffix)


def extend(children):
    return st.one_of(
        st.tuples(st.just("unary"), st.sampled_from(["-", "+", "!"]), children),
        st.tuples(st.just("binary"), st.sampled_from(list(BINARY_LEVEL)), children, children),
        st.tuples(st.just("ternary"), children, children, children),
        st.sampled_from(list(FUNCTIONS)).flatmap(
            lambda f: (
                st.tuples(st.just("call"), st.just(f), st.lists(children, min_size=1, max_size=1))
                if FUNCTIONS[f] == 1
                else st.tuples(
                    st.just("call"),
                    st.just(f),
                    st.lists(children, min_size=FUNCTIONS[f], max_size=FUNCTIONS[f]),
                )
            )
        ),
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(numbers(), extend, max_leaves=12), st.data())
def test_random_expressions_match_python(tree, data):
    text, _ = render(tree, lambda: False)
    extra, _ = render(tree, lambda: data.draw(st.sampled_from([False, False, False, True])))
    try:
        expected = reference(tree)
    except Undefined:
        for t in (text, extra):
            with pytest.raises(ExpressionError):
                evaluate(parse_expression(t), Environment())
        return
    for t in (text, extra):
        assert evaluate(parse_expression(t), Environment()) == pytest.approx(
            expected, rel=1e-12, abs=1e-300
        ), t


# -- expressions: errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("1 +", "syntax error in '1 +' at character 4: expected a number"),
        (
            "1 + * 2",
            "at character 5: expected a number, a name, '(' or a unary operator, found '*'",
        ),
        ("(1 + 2", "at character 7: expected ')', found the end"),
        ("{1 + 2)", "expected '}', found ')'"),
        ("1 2", "at character 3: expected an operator, found '2'"),
        ("max(1 2)", "expected ',' or ')', found '2'"),
        ("1 ? 2", "expected ':', found the end"),
        ("1 % 2", "at character 3: unexpected '%'"),
        ("a = 1", "unexpected '='"),
        ("1k2", "'1k2' is not a number"),
        ("", "empty expression"),
        ("   ", "empty expression"),
    ],
)
def test_syntax_errors_give_the_position(text, message):
    assert message in calc_error(text)


def test_unknown_name_is_named():
    assert "unknown parameter 'y'" in calc_error("x + y", x=1.0)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1/0", "division by zero in '1/0' ('0' is 0)"),
        ("x / (x - 1)", "division by zero in 'x / (x - 1)' ('(x - 1)' is 0)"),
        ("0^-1", "division by zero in '0^-1'"),
        ("sqrt(-1)", "sqrt(-1) is not a finite real number"),
        ("log(0)", "log(0) is not a finite real number"),
        ("asin(2)", "asin(2) is not a finite real number"),
        ("pow(-8, 1/3)", "pow(-8, 0.333333) is not a finite real number"),
        ("exp(1000)", "exp(1000) is not a finite real number"),
        ("1e200 * 1e200", "'1e200 * 1e200' is not a finite real number"),
        ("10^400", "'10^400' is not a finite real number"),
        ("sqrt(1, 2)", "sqrt() takes 1 argument, got 2 in 'sqrt(1, 2)'"),
        ("max(1)", "max() takes 2 arguments, got 1"),
        ("if(1, 2)", "if() takes 3 arguments, got 2"),
        ("limit(1, 2)", "ngspice's two-argument limit(nom, avar) is a Monte-Carlo function"),
        ("limit(1, 3, 2)", "limit(x, lo, hi) needs lo <= hi"),
        ("agauss(1, 0.1, 3)", "agauss() in 'agauss(1, 0.1, 3)' is one of ngspice's Monte-Carlo"),
        ("foo(1)", "unknown function 'foo' in 'foo(1)'; the functions are sqrt"),
    ],
)
def test_evaluation_errors(text, message):
    assert message in calc_error(text, x=1.0)


def test_deep_nesting_is_an_error_not_a_crash():
    assert "nested too deeply" in calc_error("(" * 5000 + "1" + ")" * 5000)


# -- .param, .global_param and .func ------------------------------------------------------------


def test_params_in_every_value_position():
    net = parse(
        """
        .param r0 = 1k  c0={1u}  l0='10m'  v0 = 2 f0 = 1k
        .param td = {1/f0}
        V1 a 0 SIN({v0/2} {v0} {f0} {td})
        V2 b 0 PULSE(0 {v0} {td} {td/10} 'td/10' {2*td} {4*td})
        I1 0 c PWL(0 0 {td} {v0/r0})
        I2 0 c DC {-v0/r0/2}
        R1 a b {r0}
        R2 b c r={2*r0}
        R3 c 0 '3 * r0'
        C1 b 0 {c0} IC={v0}
        L1 c 0 {l0}
        D1 c 0 DX
        .model DX D(IS={1n*v0} N='1 + 0.5')
        .tran {td/100} {10*td}
        .options reltol={1m/2}
        """
    )
    assert get(net, "R1", "g") == pytest.approx(1e-3)
    assert get(net, "R2", "g") == pytest.approx(5e-4)
    assert get(net, "R3", "g") == pytest.approx(1 / 3e3)
    assert get(net, "C1", "c") == pytest.approx(1e-6)
    assert get(net, "L1", "l") == pytest.approx(1e-2)
    assert get(net, "D1", "is_") == pytest.approx(2e-9)
    assert get(net, "D1", "n") == pytest.approx(1.5)
    sin, pulse = net.circuit.vsources.waveforms
    assert [float(sin.vo), float(sin.va), float(sin.freq), float(sin.td)] == pytest.approx(
        [1, 2, 1e3, 1e-3]
    )
    assert [float(getattr(pulse, k)) for k in ("td", "tr", "tf", "pw", "per")] == pytest.approx(
        [1e-3, 1e-4, 1e-4, 2e-3, 4e-3]
    )
    pwl, dc = net.circuit.isources.waveforms
    np.testing.assert_allclose(pwl.values, [0, 2e-3])
    assert float(dc.value) == pytest.approx(-1e-3)
    assert net.tran == Tran(1e-5, 1e-2)
    assert net.options.reltol == pytest.approx(5e-4)


def test_param_values_with_blanks_and_several_per_card():
    net = parse(
        """
        .param a = 123 * 3  b = sqrt(9), c = max(a, b) d='a + b'
        + e = {a - b}
        V1 x 0 {a + b + c + d + e}
        R1 x 0 1k
        """
    )
    assert float(net.circuit.vsources.waveforms[0].value) == 369 + 3 + 369 + 372 + 366


def test_params_resolve_by_dependency_in_any_order():
    net = parse(
        """
        V1 x 0 {a}
        R1 x 0 {r}
        .param a = {b * 2}
        .param r = {a * 1k} b = 3
        """
    )
    assert float(net.circuit.vsources.waveforms[0].value) == 6.0
    assert get(net, "R1", "g") == pytest.approx(1 / 6e3)


def test_global_param_is_a_param_of_the_deck():
    net = parse(".global_param g0 = 2m\n.param r = {1/g0}\nV1 x 0 1\nR1 x 0 {r}")
    assert get(net, "R1", "g") == pytest.approx(2e-3)


def test_func():
    net = parse(
        """
        .func f(x, y) {x*y + 1}
        .func g(x) = {f(x, 2)}
        .func par(a b) = 'a*b/(a + b)'
        .func k() {k0*2}
        .param k0 = 1k
        V1 x 0 {g(3)}
        R1 x 0 {par(2k, 2k)}
        R2 x 0 {k()}
        """
    )
    assert float(net.circuit.vsources.waveforms[0].value) == 7.0
    assert get(net, "R1", "g") == pytest.approx(1e-3)
    assert get(net, "R2", "g") == pytest.approx(0.5e-3)


def test_func_arguments_hide_parameters_of_the_same_name():
    net = parse(".param x = 100\n.func f(x) {2*x}\nV1 a 0 {f(1) + x}\nR1 a 0 1k")
    assert float(net.circuit.vsources.waveforms[0].value) == 102.0


def test_negative_base_power_warns_with_the_line():
    with pytest.warns(NetlistWarning, match=r"line 3: '\(-a\)\^3' is \|x\|\^y = 8"):
        net = parse_netlist(deck(".param a = 2\nV1 x 0 {(-a)^3}\nR1 x 0 1"))
    assert float(net.circuit.vsources.waveforms[0].value) == 8.0


@pytest.mark.parametrize(
    "body, line, texts",
    [
        (".param a={b} b={a}\nV1 x 0 {a}", 2, ["recursive parameter definition: a → b → a"]),
        (".param a={a+1}\nV1 x 0 1", 2, ["recursive parameter definition: a → a"]),
        (
            ".param a={b}\n.param b={c}\n.param c={a}\nV1 x 0 1",
            2,
            ["recursive parameter definition: a → b → c → a"],
        ),
        (".param a=1 a=2\nV1 x 0 1", 2, ["parameter 'a' is defined twice", "first at line 2"]),
        (".param a={zz+1}\nV1 x 0 1", 2, ["parameter a: unknown parameter 'zz'", "are a"]),
        (".param a=1/0\nV1 x 0 1", 2, ["parameter a: division by zero in '1/0'"]),
        (".param a=1 +\nV1 x 0 1", 2, ["syntax error in '1 +' at character 4"]),
        (".param a=\nV1 x 0 1", 2, [".param a= has no value"]),
        (".param 5\nV1 x 0 1", 2, ["expected '.param name=value ...' at '5'"]),
        (".param\nV1 x 0 1", 2, ["expected '.param name=value ...'"]),
        ("V1 x 0 {a}", 2, ["V1 value: unknown parameter 'a'", "no parameters are defined"]),
        (
            ".param r1=1 r2=2\nV1 x 0 {r3}",
            3,
            ["unknown parameter 'r3'; the defined parameters are r1, r2", "'V1 x 0 {r3}'"],
        ),
        ("V1 x 0 {1/0}", 2, ["V1 value: division by zero in '1/0'"]),
        ("V1 x 0 {sqrt(1, 2)}", 2, ["sqrt() takes 1 argument, got 2"]),
        ("V1 x 0 {1 +}", 2, ["V1 value: syntax error in '1 +' at character 4"]),
        ("V1 x 0 {1", 2, ["V1 value: '{1' has no closing '}'"]),
        ("V1 x 0 {1 + 2", 2, ["V1 value: '{1' has no closing '}'"]),
        ("V1 x 0 '1", 2, ['has no closing "\'"']),
        (".param a=2\nV1 x 0 2*a", 3, ["'2*a' is not a number", "written in braces: {2*a}"]),
        (
            ".param a=2\nV1 x 0 1\nR1 x 0 a",
            4,
            ["no .model named 'a'", "a parameter is written in braces: {a}"],
        ),
        ("V1 x 0 1\nR1 x 0 {-1k}", 3, ["R1", "must be positive"]),
        (".tran {1u} {0}", 2, ["TSTOP must be positive"]),
        (".func f(x) {x}\n.func f(y) {y}", 3, [".func f is defined twice (first at line 2)"]),
        (".func sin(x) {x}", 2, ["would replace the built-in function sin()"]),
        (".func f(x, x) {x}", 2, ["an argument is named twice"]),
        (".func f(1x) {x}", 2, ["bad argument name '1x'"]),
        (".func f {x}", 2, ["cannot read '.func f {x}'", ".func name(x, y) = {expression}"]),
        (".func f(x)", 2, [".func f has no body"]),
        (".func f(x) {x +}", 2, [".func f: syntax error in 'x +' at character 4"]),
        (".func f(x) {2*x}\nV1 x 0 {f(1, 2)}", 3, ["function f() takes 1 argument (x), got 2"]),
        (
            ".func f(x) {g(x)}\n.func g(x) {f(x)}\nV1 x 0 {f(1)}",
            4,
            ["recursive .func definition: f → g → f"],
        ),
        (".func f(x) {y}\nV1 x 0 {f(1)}", 3, ["unknown parameter 'y'"]),
    ],
)
def test_param_and_func_errors(body, line, texts):
    assert_error(body + "\nR9 x 0 1k", line, *texts)


def test_unused_bad_param_is_still_reported():
    assert_error(".param unused={1/0}\nV1 x 0 1\nR1 x 0 1k", 2, "parameter unused: division")


# -- .tran ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card, tran, said",
    [
        (".tran 0 1m", Tran(2e-5, 1e-3), "TSTEP is 0"),
        (".tran 1m", Tran(2e-5, 1e-3), "TSTEP omitted"),
        (".tran 1m UIC", Tran(2e-5, 1e-3, True), "TSTEP omitted"),
        (".tran 0 {2m/2} 0 1u", Tran(2e-5, 1e-3), "TSTEP is 0"),
    ],
)
def test_tran_without_a_step_uses_tstop_over_50(card, tran, said):
    with pytest.warns(NetlistWarning) as record:
        net = parse_netlist(deck(f"V1 a 0 1\nR1 a 0 1k\n{card}"))
    assert net.tran.tstep == pytest.approx(tran.tstep)
    assert (net.tran.tstop, net.tran.uic) == (tran.tstop, tran.uic)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith(f"line 4: {said} in '{card}': the output step is TSTOP/50 = 2e-05")


def test_pulse_defaults_follow_the_derived_step():
    net = parse("V1 a 0 PULSE(0 1)\nR1 a 0 1k\n.tran 1m")
    wave = net.circuit.vsources.waveforms[0]
    assert float(wave.tr) == pytest.approx(2e-5)
    assert float(wave.pw) == pytest.approx(1e-3)


# -- ignored cards -------------------------------------------------------------------------------


IGNORED = [
    ".sens v(a)",
    ".four 1k v(a)",
    ".fft v(a)",
    ".noise v(a) V1 dec 10 1 1k",
    ".meas tran vmax max v(a)",
    ".print tran v(a)",
    ".probe v(a)",
    ".save all",
    ".disto dec 10 1k 1meg",
    ".pz a 0 a 0 vol pz",
    ".tf v(a) V1",
    ".op",
    ".ac dec 10 1 1meg",
    ".dc V1 0 1 0.1",
]


def test_cards_that_do_not_change_a_transient_warn():
    body = "V1 a 0 1\nR1 a 0 1k\n" + "\n".join(IGNORED)
    with pytest.warns(NetlistWarning) as record:
        net = parse_netlist(deck(body))
    messages = [str(w.message) for w in record]
    assert messages == [f"line {k + 4}: {card!r} ignored" for k, card in enumerate(IGNORED)]
    assert net.circuit.branch_names == ("R1",)


# -- .include and .lib --------------------------------------------------------------------------


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        return load_netlist(path)


def load_error(path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        with pytest.raises(NetlistError) as info:
            load_netlist(path)
    return str(info.value)


def test_include_paths_are_relative_to_the_including_file(tmp_path):
    write(tmp_path / "lib" / "parts" / "r.inc", "R2 b 0 {rval}\n.param rval = 2k\n")
    write(tmp_path / "lib" / "all.inc", ".include parts/r.inc\n.include '../c.inc'\n")
    write(tmp_path / "c.inc", "C1 b 0 1u\n")
    main = write(
        tmp_path / "deck" / "main.cir",
        """
        include test
        V1 a 0 1
        R1 a b 1k
        .include "../lib/all.inc"
        .end
        """,
    )
    net = load_quietly(main)
    assert net.circuit.branch_names == ("R1", "R2", "C1")
    assert get(net, "R2", "g") == pytest.approx(5e-4)


def test_parse_netlist_includes_relative_to_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path / "parts.inc", "R1 a 0 1k\n")
    monkeypatch.chdir(tmp_path)
    net = parse("V1 a 0 1\n.inc parts.inc")
    assert net.circuit.branch_names == ("R1",)


def test_lib_sections(tmp_path):
    write(
        tmp_path / "models.lib",
        """
        * two corners, each using the shared section
        .lib fast
        .param rr = 1k
        .lib models.lib shared
        .endl fast
        .lib slow
        .param rr = 3k
        .lib 'models.lib' shared
        .endl
        .lib shared
        R1 a 0 {rr}
        .endl shared
        """,
    )
    for corner, r in (("fast", 1e3), ("SLOW", 3e3)):
        main = write(tmp_path / f"{corner}.cir", f"corner\nV1 a 0 1\n.lib models.lib {corner}\n")
        net = load_quietly(main)
        assert net.circuit.branch_names == ("R1",)
        assert get(net, "R1", "g") == pytest.approx(1 / r)


def test_lib_sections_in_the_deck_are_skipped(tmp_path):
    main = write(
        tmp_path / "deck.cir",
        """
        deck with its own section
        V1 a 0 1
        .lib extra
        R9 a 0 1
        .endl
        .lib deck.cir extra
        """,
    )
    net = load_quietly(main)
    assert net.circuit.branch_names == ("R9",)


def test_end_in_an_included_file_is_skipped(tmp_path):
    write(tmp_path / "a.inc", "R1 a 0 1k\n.end\nR2 a 0 1k\n")
    main = write(tmp_path / "deck.cir", "t\nV1 a 0 1\n.include a.inc\nR3 a 0 1k\n.end\nR4 a 0 1\n")
    assert load_quietly(main).circuit.branch_names == ("R1", "R2", "R3")


def test_missing_include_names_the_chain(tmp_path):
    write(
        tmp_path / "sub" / "b.lib", "* parts\n.lib parts\nR1 a 0 1k\n.include nothere.inc\n.endl\n"
    )
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.lib sub/b.lib parts\n")
    message = load_error(main)
    assert message.startswith(
        f"{main}, line 3 → {tmp_path / 'sub' / 'b.lib'}, line 4: '.include nothere.inc': "
        "file 'nothere.inc' not found"
    ), message
    assert str(tmp_path / "sub" / "nothere.inc") in message


def test_include_cycle(tmp_path):
    write(tmp_path / "b.inc", "R1 a 0 1k\n.include c.inc\n")
    write(tmp_path / "c.inc", "* back\n.include b.inc\n")
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.include b.inc\n")
    message = load_error(main)
    b, c = tmp_path / "b.inc", tmp_path / "c.inc"
    assert message.startswith(f"{main}, line 3 → {b}, line 2 → {c}, line 2: "), message
    assert f"include cycle; {b} is already being read" in message


def test_deck_including_itself(tmp_path):
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.include a.cir\n")
    assert "include cycle" in load_error(main)


def test_missing_section(tmp_path):
    write(tmp_path / "m.lib", ".lib tt\n.param x=1\n.endl\n.lib ff\n.endl ff\n")
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\nR1 a 0 1\n.lib m.lib ss\n")
    message = load_error(main)
    assert message.startswith(f"{main}, line 4: library {tmp_path / 'm.lib'} has no section 'ss'")
    assert "its sections are tt, ff" in message


@pytest.mark.parametrize(
    "library, card, texts",
    [
        (".lib tt\n.param x=1\n", ".lib m.lib tt", ["m.lib, line 1: '.lib tt' opens a library"]),
        ("R1 a 0 1\n.endl\n", ".include m.lib", ["m.lib, line 2: '.endl' has no '.lib NAME'"]),
        ("", ".lib m.lib", ["'.lib m.lib' opens a library section that has no '.endl'"]),
        ("", ".lib m.lib a b", ["unexpected 'b'", "write '.lib FILE SECTION'"]),
        ("", ".include", ["'.include' names no file"]),
        ("", ".include 'm.lib", ["has no closing quote"]),
        ("", ".include m.lib extra", ["unexpected 'extra' after the file name"]),
        ("", ".lib ''", ["empty file name"]),
    ],
)
def test_bad_include_and_lib_cards(tmp_path, library, card, texts):
    write(tmp_path / "m.lib", library)
    main = write(tmp_path / "a.cir", f"t\nV1 a 0 1\nR1 a 0 1\n{card}\n")
    message = load_error(main)
    for text in texts:
        assert text in message, (text, message)


def test_include_of_a_folder_is_an_error(tmp_path):
    (tmp_path / "folder").mkdir()
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.include folder\n")
    assert "cannot read" in load_error(main)


def test_errors_and_warnings_in_included_files_name_file_and_line(tmp_path):
    inc = write(tmp_path / "parts.inc", "* parts\nC1 a 0 1u IC=1\nR1 a 0 1x2\n")
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.include parts.inc\n")
    message = load_error(main)
    assert message.startswith(f"{main}, line 3 → {inc}, line 3: R1 resistance: '1x2'"), message
    write(tmp_path / "parts.inc", "* parts\nC1 a 0 1u IC=1\n.op\n")
    with pytest.warns(NetlistWarning) as record:
        net = load_netlist(main)
    assert [str(w.message) for w in record] == list(net.warnings)
    assert net.warnings[0].startswith(f"{main}, line 3 → {inc}, line 2: C1: IC=1 ignored")
    note = net.notes[0]
    assert (note.place.source, note.place.line) == (str(inc), 2)
    assert note.one_line().startswith(f"{inc}:2: warning: C1: IC=1 ignored")
    assert note.one_line().endswith(f"(included from {main}:3)")
    assert net.notes[1].one_line() == f"{inc}:3: warning: '.op' ignored (included from {main}:3)"


def test_warnings_are_in_reading_order(tmp_path):
    write(tmp_path / "x.inc", ".op\n")
    main = write(tmp_path / "a.cir", "t\nV1 a 0 1\n.save all\n.include x.inc\nR1 a 0 1\n.ac\n")
    with pytest.warns(NetlistWarning):
        net = load_netlist(main)
    assert [n.message for n in net.notes] == [
        "'.save all' ignored",
        "'.op' ignored",
        "'.ac' ignored",
    ]


# -- subcircuits ---------------------------------------------------------------------------------


NESTED = """
.param gain = 2
.subckt inner a b params: r=1k
R1 a mid {r}
R2 mid b {r*gain}
.ends inner
.subckt outer in out params: rr=2k
X1 in n1 inner r={rr}
Xfoo n1 out inner
C1 out 0 1u
.ends
V1 1 0 1
X1 1 2 outer rr=500
Xb 1 3 outer
"""


def test_subcircuits_flatten_with_ngspice_names():
    net = parse(NESTED)
    # ngspice 39 names these nodes and elements the same (lower-case: r.x1.x1.r1)
    assert net.circuit.node_names == (
        "1",
        "x1.x1.mid",
        "x1.n1",
        "x1.xfoo.mid",
        "2",
        "xb.x1.mid",
        "xb.n1",
        "xb.xfoo.mid",
        "3",
    )
    assert net.circuit.branch_names == (
        "R.X1.X1.R1",
        "R.X1.X1.R2",
        "R.X1.Xfoo.R1",
        "R.X1.Xfoo.R2",
        "R.Xb.X1.R1",
        "R.Xb.X1.R2",
        "R.Xb.Xfoo.R1",
        "R.Xb.Xfoo.R2",
        "C.X1.C1",
        "C.Xb.C1",
    )
    resistance = {name: 1 / get(net, name, "g") for name in net.circuit.branch_names[:8]}
    assert resistance == pytest.approx(
        {
            "R.X1.X1.R1": 500,  # r = rr of X1
            "R.X1.X1.R2": 1000,  # r * gain, gain global
            "R.X1.Xfoo.R1": 1000,  # r's default
            "R.X1.Xfoo.R2": 2000,
            "R.Xb.X1.R1": 2000,  # rr's default
            "R.Xb.X1.R2": 4000,
            "R.Xb.Xfoo.R1": 1000,
            "R.Xb.Xfoo.R2": 2000,
        }
    )
    assert get(net, "r.xb.x1.r2", "g") == pytest.approx(1 / 4000)  # names are case-insensitive


def test_nested_definitions_local_params_models_and_ground():
    net = parse(
        """
        .param scale = 10
        .subckt cell p params: k=1
        .param local = {k*scale}
        .subckt leaf x
        Rl x 0 {local}
        .ends leaf
        .model dm D(IS={k*1n})
        Xl p leaf
        D1 p gnd dm
        .ends cell
        V1 a 0 1
        X1 a cell
        X2 a cell k=3
        """
    )
    assert 1 / get(net, "R.X1.Xl.Rl", "g") == pytest.approx(10)
    assert 1 / get(net, "R.X2.Xl.Rl", "g") == pytest.approx(30)
    assert get(net, "D.X1.D1", "is_") == pytest.approx(1e-9)
    assert get(net, "D.X2.D1", "is_") == pytest.approx(3e-9)
    assert net.circuit.node_names == ("a",)  # every element ends at ground or port p


def test_subckt_defaults_may_use_other_params_and_globals():
    net = parse(
        """
        .param base = 1k
        .subckt div top params: r1={base} r2={2*r1}
        Ra top mid {r1}
        Rb mid 0 {r2}
        .ends div
        V1 a 0 1
        X1 a div
        X2 a div r1=3k
        X3 a DIV PARAMS: r2=5k
        """
    )
    ohms = [1 / get(net, n, "g") for n in net.circuit.branch_names]
    assert ohms == pytest.approx([1e3, 2e3, 3e3, 6e3, 1e3, 5e3])


def test_instance_parameters_are_evaluated_where_the_instance_is():
    net = parse(
        """
        .subckt leaf a params: r=1
        R1 a 0 {r}
        .ends
        .subckt mid a params: m=2
        .param inner = {m*100}
        X1 a leaf r={inner + m}
        .ends
        V1 a 0 1
        X1 a mid m=5
        """
    )
    assert 1 / get(net, "R.X1.X1.R1", "g") == pytest.approx(505)


def test_subckt_in_an_included_file(tmp_path):
    write(tmp_path / "cells.inc", ".subckt rc in out\nR1 in out 1k\nC1 out 0 1u\n.ends\n")
    main = write(tmp_path / "a.cir", "t\n.include cells.inc\nV1 a 0 1\nX1 a b rc\nX2 b c rc\n")
    net = load_quietly(main)
    assert net.circuit.branch_names == ("R.X1.R1", "R.X2.R1", "C.X1.C1", "C.X2.C1")
    assert net.circuit.node_names == ("a", "b", "c")


def test_warnings_inside_a_subcircuit_are_given_once():
    with pytest.warns(NetlistWarning) as record:
        net = parse_netlist(
            deck(
                """
                .subckt s a
                C1 a 0 1u IC=1
                .model dd D(IS=1n RS=1)
                D1 a 0 dd
                .ends
                V1 a 0 1
                X1 a s
                X2 a s
                """
            )
        )
    messages = [str(w.message) for w in record]
    assert len(messages) == 3, messages  # the model's warning once, not once per instance
    assert messages[0].startswith("line 3: C.X1.C1: IC=1 ignored")
    assert messages[1].startswith("line 3: C.X2.C1: IC=1 ignored")
    assert "parameter RS=1 is not used" in messages[2]
    assert net.warnings == tuple(messages)


@pytest.mark.parametrize(
    "body, line, texts",
    [
        ("X1 a 0 nope", 2, ["X1: unknown subcircuit 'nope'", "no .subckt is defined"]),
        (
            ".subckt s1 a\nR1 a 0 1\n.ends\nX1 a 0 nope",
            5,
            ["unknown subcircuit 'nope'", "the subcircuits defined are s1"],
        ),
        (
            ".subckt s a b\nR1 a b 1\n.ends\nX1 a s",
            5,
            ["X1: subcircuit 's' (line 4) has 2 port(s) (a b), but 'X1 a s' connects 1 node"],
        ),
        (".subckt s a b\nR1 a b 1\n.ends\nX1 a b 0 s", 5, ["connects 3 node(s)"]),
        (".subckt s a\nR1 a 0 1", 2, ["subcircuit 's' has no '.ends'"]),
        (
            ".subckt s a\n.subckt t b\nR1 b 0 1\n.ends\nR1 a 0 1",
            2,
            ["subcircuit 's' has no '.ends'"],
        ),
        (".ends", 2, ["'.ends' has no '.subckt' before it"]),
        (
            ".subckt s a\nR1 a 0 1\n.ends t",
            4,
            ["'.ends t' closes 't', but the open subcircuit is 's' (line 4)"],
        ),
        (".subckt", 2, ["'.subckt' names no subcircuit"]),
        (".subckt s 0 a\n.ends", 2, ["ground ('0') cannot be a port"]),
        (".subckt s a a\n.ends", 2, ["port 'a' is listed twice"]),
        (".subckt s a\n.ends\n.subckt S b\n.ends", 4, ["subcircuit 'S' is defined twice"]),
        (
            ".subckt s a\nX1 a s\n.ends\nX1 a s",
            3,
            ["X1: subcircuit recursion s → s", "[in X1, an instance of 's']"],
        ),
        (
            ".subckt p a\nX1 a q\n.ends\n.subckt q a\nX2 a p\n.ends\nX1 a p",
            6,
            ["X2: subcircuit recursion p → q → p"],
        ),
        (".subckt s a params: r=1\nR1 a 0 {r}\n.ends\nX1 a s rr=2", 5, ["has no parameter 'rr'"]),
        (".subckt s a\nR1 a 0 1\n.ends\nX1 a s r=2", 5, ["its parameters are none"]),
        (
            ".subckt s a params: r=1\nR1 a 0 {r}\n.ends\nX1 a s r=1 + 2",
            5,
            ["expected 'name=value' at '+ 2'", "r={2 * rload}"],
        ),
        (".subckt s a params: r=1\n.ends\nX1 a s r=1 r=2", 4, ["parameter 'r' is given twice"]),
        (".subckt s a params: r\n.ends", 2, ["expected 'name=value' at 'r'"]),
        (
            ".subckt s a params: r=1\nR1 a 0 {r/0}\n.ends\nX1 a s",
            3,
            ["R.X1.R1 resistance: division by zero", "[in X1, an instance of 's']"],
        ),
        (
            ".subckt s a params: r={q}\nR1 a 0 {r}\n.ends\nX1 a s",
            2,
            ["unknown parameter 'q'", "[in X1, an instance of 's']"],
        ),
        (
            ".subckt s a params: r=1\n.param r=2\nR1 a 0 {r}\n.ends\nX1 a s r=3",
            3,
            ["parameter 'r' is defined twice", "first at line 4"],
        ),
        (".subckt s a\n.tran 1u 1m\n.ends\nX1 a s", 3, ["'.tran 1u 1m' inside a subcircuit"]),
        (
            ".subckt s a\n.global_param g=1\n.ends\nX1 a s",
            3,
            ["inside a subcircuit; a .global_param belongs to the deck"],
        ),
        (".subckt s a\nR1 a 0 1\n.ends\nX1 a s\nx1 a s", 6, ["duplicate subcircuit instance"]),
        (".subckt s a\nR1 a 0 1\n.ends\nX1 {a} s", 5, ["node name '{a}'"]),
        ("X1", 2, ["X1: no subcircuit name"]),
        (
            ".subckt s a\nR1 a b 1\nR1 b 0 1\n.ends\nX1 a s",
            4,
            ["duplicate element name 'R.X1.R1'", "first defined on line 5"],
        ),
        (".subckt s a\nR1 a 0 NOPE\n.ends\nX1 a s", 3, ["no .model named 'NOPE'"]),
    ],
)
def test_subckt_errors(body, line, texts):
    assert_error("V1 a 0 1\nR9 a 0 1\n" + body, line + 2, *texts)


def test_models_of_one_subcircuit_are_not_visible_in_another():
    body = """
    V1 a 0 1
    .subckt s1 p
    .model m1 D
    D1 p 0 m1
    .ends
    .subckt s2 p
    D1 p 0 m1
    .ends
    X1 a s1
    X2 a s2
    """
    assert "no .model named 'm1'" in error_of(body)


def test_subckt_parameters_are_not_visible_outside():
    body = ".subckt s a params: r=1\nR1 a 0 {r}\n.ends\nV1 a 0 1\nX1 a s\nR2 a 0 {r}"
    assert_error(body, 7, "R2 resistance: unknown parameter 'r'")


# -- encodings and line endings ------------------------------------------------------------------

DECK_TEXT = "RC deck\n* µ-farads: 1µ = 1u\nV1 a 0 1\nR1 a b 1k\nC1 b 0 1u\n.tran 1u 1m\n"


@pytest.mark.parametrize(
    "encoding, newline",
    [
        ("utf-8", "\n"),
        ("utf-8-sig", "\n"),
        ("latin-1", "\n"),
        ("cp1252", "\r\n"),
        ("utf-16", "\n"),  # Python writes the byte-order mark
        ("utf-16", "\r\n"),
        ("utf-32", "\n"),
        ("utf-8", "\r\n"),
        ("utf-8", "\r"),
    ],
)
def test_encodings_and_line_endings(tmp_path, encoding, newline):
    path = tmp_path / "deck.cir"
    path.write_bytes(DECK_TEXT.replace("\n", newline).encode(encoding))
    net = load_quietly(path)
    assert net.title == "RC deck"
    assert net.circuit.branch_names == ("R1", "C1")
    assert net.tran == Tran(1e-6, 1e-3)


def test_latin1_byte_that_python_counts_as_a_line_break(tmp_path):
    # 0x85 is "…" in cp1252 and NEL in Latin-1: it must not split a comment into a card
    path = tmp_path / "deck.cir"
    path.write_bytes(b"t\n* wait\x85 R2 x y 1\nV1 a 0 1\nR1 a 0 1k\n")
    assert load_quietly(path).circuit.branch_names == ("R1",)


def test_error_line_numbers_with_crlf(tmp_path):
    path = tmp_path / "deck.cir"
    path.write_bytes(b"t\r\nV1 a 0 1\r\n\r\nR1 a 0 1x2\r\n")
    assert load_error(path).startswith(f"{path}, line 4: R1 resistance")


def test_included_file_in_another_encoding(tmp_path):
    (tmp_path / "inc.cir").write_bytes("* µ\nR1 a 0 1k\n".encode("utf-16"))
    main = tmp_path / "main.cir"
    main.write_bytes("main ½\n.include inc.cir\nV1 a 0 1\n".encode("latin-1"))
    net = load_quietly(main)
    assert net.title == "main ½"
    assert net.circuit.branch_names == ("R1",)
