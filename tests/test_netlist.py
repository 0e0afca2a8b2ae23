"""Tests of the SPICE-subset netlist parser (no simulations)."""

import jax

jax.config.update("jax_enable_x64", True)

import math  # noqa: E402
import textwrap  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fracprop._circuit.laws import Cubic, Linear, Sinh, Tanh  # noqa: E402
from fracprop._circuit.netlist import (  # noqa: E402
    Netlist,
    NetlistError,
    NetlistWarning,
    Tran,
    load_netlist,
    parse_netlist,
    parse_value,
)
from fracprop._circuit.waveforms import DC, PWL, Pulse, Sin  # noqa: E402


def deck(body: str, title: str = "test deck") -> str:
    return title + "\n" + textwrap.dedent(body).strip("\n") + "\n"


def parse(body: str, title: str = "test deck") -> Netlist:
    return parse_netlist(deck(body, title))


def parse_quietly(body: str, title: str = "test deck") -> Netlist:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        return parse(body, title)


def group(netlist: Netlist, kind: str):
    found = [g for g in netlist.circuit.groups if g.kind == kind]
    assert len(found) == 1, [g.kind for g in netlist.circuit.groups]
    return found[0]


def get(netlist: Netlist, name: str, parameter: str) -> float:
    return float(netlist.circuit.get(name, parameter))


def error_of(body: str, *, title: str = "test deck") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetlistWarning)
        with pytest.raises(NetlistError) as info:
            parse(body, title)
    exc = info.value
    assert exc.__cause__ is None and exc.__suppress_context__ or exc.__context__ is None
    return str(exc)


def assert_error(body: str, line: int, *texts: str) -> str:
    message = error_of(body)
    assert message.startswith(f"line {line}: "), message
    for text in texts:
        assert text in message, (text, message)
    return message


# -- engineering numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token, value",
    [
        ("1e3", 1e3),
        ("2.5", 2.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("-3", -3.0),
        ("+4", 4.0),
        ("1e-3", 1e-3),
        ("1.5E+2", 150.0),
        ("1f", 1e-15),
        ("1p", 1e-12),
        ("1n", 1e-9),
        ("1u", 1e-6),
        ("1µ", 1e-6),
        ("1m", 1e-3),
        ("1M", 1e-3),
        ("1k", 1e3),
        ("2.2k", 2200.0),
        ("2.2K", 2200.0),
        ("1meg", 1e6),
        ("1MEG", 1e6),
        ("1Meg", 1e6),
        ("1g", 1e9),
        ("1T", 1e12),
        ("1mil", 25.4e-6),
        ("10V", 10.0),
        ("60Hz", 60.0),
        ("1mF", 1e-3),
        ("0.01pA", 1e-14),
        ("1kohm", 1000.0),
        ("1MEGohm", 1e6),
        ("4.7uF", 4.7e-6),
        ("1x", 1.0),
        ("3ohm", 3.0),
        ("1e3k", 1e6),
        ("2e-3meg", 2e3),
    ],
)
def test_parse_value(token, value):
    assert parse_value(token) == pytest.approx(value, rel=1e-15)


@pytest.mark.parametrize("token", ["abc", "k1", "", "-", ".", "1x2", "1k2", "10%", "1e999", "e3"])
def test_parse_value_rejects(token):
    with pytest.raises(NetlistError, match="not a"):
        parse_value(token)


_SUFFIXES = {
    "": 1.0,
    "f": 1e-15,
    "p": 1e-12,
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
    "k": 1e3,
    "meg": 1e6,
    "g": 1e9,
    "t": 1e12,
}


@settings(max_examples=200, deadline=None)
@given(
    mantissa=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    suffix=st.sampled_from(sorted(_SUFFIXES)),
    upper=st.booleans(),
    # Unit letters that are not scale factors (F, for instance, would read as femto).
    unit=st.sampled_from(["", "V", "A", "Hz", "ohm", "s", "H", "W"]),
    style=st.sampled_from(["repr", "e", "g"]),
)
def test_parse_value_round_trip(mantissa, suffix, upper, unit, style):
    text = {"repr": repr(mantissa), "e": f"{mantissa:.15e}", "g": f"{mantissa:.17g}"}[style]
    suffix_text = suffix.upper() if upper else suffix
    token = text + suffix_text + unit
    expected = float(text) * _SUFFIXES[suffix]
    assert math.isclose(parse_value(token), expected, rel_tol=1e-12, abs_tol=0.0)


# -- structure: title, comments, continuation, case ----------------------------------------------


def test_title_is_never_a_card():
    net = parse("V1 a 0 1\nR1 a 0 1k", title="R1 a b 1k")
    assert net.title == "R1 a b 1k"
    assert net.circuit.title == "R1 a b 1k"
    assert net.circuit.branch_names == ("R1",)
    assert parse("V1 a 0 1\nR1 a 0 1k", title=".end").circuit.branch_names == ("R1",)
    assert parse("V1 a 0 1\nR1 a 0 1k", title="* not a comment").title == "* not a comment"


def test_blank_first_line_is_the_title():
    # A deck written as a Python string starting with a newline: the first card line is a card.
    text = "\nV1 a 0 1\nR1 a 0 1k\n"
    net = parse_netlist(text)
    assert net.title == ""
    assert net.circuit.branch_names == ("R1",)


def test_blank_first_line_hint():
    with pytest.raises(NetlistError, match="first line of a netlist is always its title"):
        parse_netlist("\nRC filter\nV1 a 0 1\nR1 a 0 1k")


def test_title_card_replaces_title():
    net = parse(".TITLE  My filter\nV1 a 0 1\nR1 a 0 1k")
    assert net.title == "My filter"


def test_comments_and_inline_comments():
    net = parse(
        """
        * a comment line
          * an indented comment
        V1 a 0 1 ; the source
        R1 a b 1k $ a resistor
        R2 b 0 2k;no blank before it

        R3 b 0 3k ; R4 b 0 4k
        """
    )
    assert net.circuit.branch_names == ("R1", "R2", "R3")
    assert net.warnings == ()


def test_continuation_lines():
    net = parse(
        """
        V1 a 0
        + SIN(0 1
        * a comment between continuation lines
        + 1k)
        R1 a
        +   0
        +   2.2k
        """
    )
    assert get(net, "R1", "g") == pytest.approx(1 / 2200)
    assert float(net.circuit.vsources.waveforms[0].freq) == 1e3


def test_error_on_continuation_reports_first_line():
    assert_error("V1 a 0 1\nR1 a\n+ 0\n+ 1x2", 3, "R1", "'1x2'")


def test_continuation_without_card():
    assert_error("+ R1 a 0 1k\nV1 a 0 1", 2, "continuation", "'+ R1 a 0 1k'")


def test_case_insensitive():
    net = parse(
        """
        v1 IN Gnd dc 5
        r1 In OUT 1K
        rLoad out 0 mem
        .MODEL MEM fmem(ALPHA=0.5 G=1M LAW=TANH PSI0=0.1)
        .TRAN 1U 1M UIC
        .END
        """
    )
    assert net.circuit.node_names == ("in", "out")
    assert net.circuit.branch_names == ("r1", "rLoad")
    assert get(net, "R1", "g") == pytest.approx(1e-3)
    assert get(net, "rload", "g") == pytest.approx(1e-3)
    assert isinstance(group(net, "Memristors").law, Tanh)
    assert net.tran == Tran(1e-6, 1e-3, True)
    assert float(net.circuit.vsources.waveforms[0].value) == 5.0


def test_gnd_is_ground():
    net = parse("V1 a GND 1\nR1 a b 1k\nR2 b gnd 1k\nR3 b 0 1k")
    assert net.circuit.node_names == ("a", "b")
    assert group(net, "Resistors").nodes == ((0, 1), (1, -1), (1, -1))


def test_end_stops_parsing_and_ignored_cards_warn():
    with pytest.warns(NetlistWarning) as record:
        net = parse(
            """
            V1 a 0 1
            R1 a 0 1k
            .op
            .options reltol=1e-4
            .option gmin=1e-12
            .print tran v(a)
            .plot tran v(a)
            .save all
            .probe v(a)
            .meas tran vmax max v(a)
            .ic v(a)=0
            .control
            run
            X1 this is not parsed
            .endc
            .end
            X1 nor is this
            R1 a 0 this would be a duplicate
            """
        )
    assert net.circuit.branch_names == ("R1",)
    messages = [str(w.message) for w in record]
    # `.options reltol=` is used (the time-error control); `.option gmin=` is not.
    assert len(messages) == 9
    assert messages == list(net.warnings)
    assert "line 4: '.op' ignored" in messages
    assert "line 6: .options gmin=1e-12 ignored" in messages
    assert net.options.reltol == 1e-4
    assert any(m.startswith("line 13: ") and ".control" in m for m in messages)


def test_unterminated_control_block():
    assert_error("V1 a 0 1\nR1 a 0 1k\n.control\nrun", 4, ".control", ".endc")


def test_str():
    net = parse("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m")
    text = str(net)
    assert "test deck" in text
    assert ".tran 1e-06 0.001" in text
    assert str(net.circuit) in text


# -- elements and models -------------------------------------------------------------------------


def test_rcl_values():
    net = parse("V1 a 0 1\nR1 a b 2.2k\nC1 b 0 4.7uF\nL1 b 0 10mH")
    assert get(net, "R1", "g") == pytest.approx(1 / 2200)
    assert get(net, "C1", "c") == pytest.approx(4.7e-6)
    assert get(net, "L1", "l") == pytest.approx(1e-2)
    assert isinstance(group(net, "Capacitors").law, Linear)
    assert isinstance(group(net, "Inductors").law, Linear)


def test_ngspice_value_keywords():
    net = parse("V1 a 0 1\nR1 a b r=2k\nC1 b 0 C = 1u\nL1 b 0 l=1m")
    assert get(net, "R1", "g") == pytest.approx(5e-4)
    assert get(net, "C1", "c") == pytest.approx(1e-6)
    assert get(net, "L1", "l") == pytest.approx(1e-3)


def test_initial_condition_is_ignored_with_warning():
    with pytest.warns(NetlistWarning) as record:
        net = parse("V1 a 0 1\nR1 a b 1k\nC1 b 0 1u IC=0.5\nL1 b 0 1m ic = 1m")
    assert [str(w.message) for w in record] == list(net.warnings)
    assert net.warnings[0].startswith("line 4: C1: IC=0.5 ignored")
    assert net.warnings[1].startswith("line 5: L1: IC=1m ignored")
    assert get(net, "C1", "c") == pytest.approx(1e-6)
    assert get(net, "L1", "l") == pytest.approx(1e-3)


def test_models_defined_after_use():
    net = parse(
        """
        V1 a 0 1
        R1 a b MEM1
        C1 b 0 CP1
        D1 b 0 DMOD
        .model MEM1 FMEM(alpha=0.5 law=tanh g=1m psi0=0.1)
        .model CP1 FCAP(c=1u alpha=0.7)
        .model DMOD D(IS=2n N=1.5)
        """
    )
    assert get(net, "R1", "g") == pytest.approx(1e-3)
    assert get(net, "C1", "alpha") == pytest.approx(0.7)
    assert get(net, "D1", "is_") == pytest.approx(2e-9)
    assert get(net, "D1", "n") == pytest.approx(1.5)


def test_fmem_model():
    net = parse(
        """
        V1 a 0 1
        R1 a b MEM1
        R2 b 0 MEM2
        R3 b 0 mem3
        .model MEM1 FMEM(alpha=0.5 law=tanh g=1m psi0=0.1)
        .model MEM2 FMEM (alpha=0.25, g=2m, law=tanh)
        .model MEM3 FMEM alpha=1 g=3m
        """
    )
    tanh = [g for g in net.circuit.groups if g.kind == "Memristors" and isinstance(g.law, Tanh)]
    assert len(tanh) == 1
    mem = tanh[0]
    assert mem.names == ("R1", "R2")
    assert mem.nodes == ((0, 1), (1, -1))
    np.testing.assert_allclose(mem.g, [1e-3, 2e-3])
    np.testing.assert_allclose(mem.alpha, [0.5, 0.25])
    np.testing.assert_allclose(mem.law.scale, [0.1, 1.0])
    assert get(net, "R3", "alpha") == 1.0
    assert get(net, "R3", "g") == pytest.approx(3e-3)
    linear = [g for g in net.circuit.groups if g.kind == "Memristors" and g is not mem]
    assert isinstance(linear[0].law, Linear)


@pytest.mark.parametrize("law, cls", [("tanh", Tanh), ("sinh", Sinh), ("cubic", Cubic)])
def test_ncap_and_nind_models(law, cls):
    net = parse(
        f"""
        V1 a 0 1
        R1 a b 1k
        C1 b 0 NC
        L1 b 0 NI
        .model NC NCAP(c=1n law={law} v0=2)
        .model NI NIND(l=1m law={law.upper()} phi0=3m)
        """
    )
    cap = group(net, "Capacitors")
    ind = group(net, "Inductors")
    assert isinstance(cap.law, cls) and isinstance(ind.law, cls)
    np.testing.assert_allclose(cap.c, [1e-9])
    np.testing.assert_allclose(cap.law.scale, [2.0])
    np.testing.assert_allclose(ind.l, [1e-3])
    np.testing.assert_allclose(ind.law.scale, [3e-3])
    assert float(net.circuit.get("C1", "scale")) == pytest.approx(2.0)


def test_model_defaults():
    with pytest.warns(NetlistWarning, match="v0 has no effect with law=linear"):
        net = parse(
            """
            V1 a 0 1
            R1 a b 1k
            C1 b 0 NC
            C2 b 0 NC2
            L1 b 0 NI
            D1 b 0 DD
            .model NC NCAP(c=1n)
            .model NC2 NCAP(c=2n law=linear v0=5)
            .model NI NIND(l=1m law=tanh)
            .model DD D
            """
        )
    assert isinstance(group(net, "Capacitors").law, Linear)
    assert float(group(net, "Inductors").law.scale[0]) == 1.0
    assert get(net, "D1", "is_") == pytest.approx(1e-14)
    assert get(net, "D1", "n") == 1.0


def test_fcap_maps_to_cpe():
    net = parse("V1 a 0 1\nR1 a b 1k\nC1 b 0 CPE\n.model CPE FCAP(c=10u alpha=0.6)")
    cpe = group(net, "CPEs")
    assert cpe.names == ("C1",)
    np.testing.assert_allclose(cpe.c, [1e-5])
    np.testing.assert_allclose(cpe.alpha, [0.6])


def test_diode_unused_parameters_warn():
    body = """
    V1 a 0 1
    R1 a b 1k
    D1 b 0 D1N4148
    .model D1N4148 D(IS=2.52n RS=0.568 N=1.752 CJO=4p M=0.4 TT=20n BV=100 IBV=100u)
    """
    with pytest.warns(NetlistWarning) as record:
        net = parse(body)
    ignored = [str(w.message) for w in record]
    assert len(ignored) == 6
    assert all(m.startswith("line 5: diode model 'D1N4148': parameter ") for m in ignored)
    assert "line 5: diode model 'D1N4148': parameter BV=100 is not used" in ignored[4]
    for name in ("RS", "CJO", "M", "TT", "BV", "IBV"):
        assert any(f"parameter {name}=" in m for m in ignored), name
    assert len(net.warnings) == 6
    assert get(net, "D1", "is_") == pytest.approx(2.52e-9)
    assert get(net, "D1", "n") == pytest.approx(1.752)


def test_no_warnings_for_a_clean_deck():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = parse("V1 a 0 SIN(0 1 1k)\nR1 a b 1k\nC1 b 0 1u\n.tran 1u 1m")
    assert net.warnings == ()


# -- sources -------------------------------------------------------------------------------------


def source(net: Netlist, k: int = 0):
    return net.circuit.vsources.waveforms[k]


@pytest.mark.parametrize(
    "spec",
    [
        "SIN(0 1 1k)",
        "SIN (0 1 1k)",
        "sin( 0, 1, 1k )",
        "SIN 0 1 1k",
        "DC 0 SIN(0 1 1k)",
        "SIN(0 1 1kHz)",
    ],
)
def test_sin_spellings(spec):
    wave = source(parse(f"V1 a 0 {spec}\nR1 a 0 1k"))
    assert isinstance(wave, Sin)
    assert (float(wave.vo), float(wave.va), float(wave.freq)) == (0.0, 1.0, 1e3)
    assert (float(wave.td), float(wave.theta), float(wave.phase)) == (0.0, 0.0, 0.0)


def test_sin_all_parameters():
    wave = source(parse("V1 a 0 SIN(0.5 2 50 1m 10 90)\nR1 a 0 1k"))
    values = [float(getattr(wave, k)) for k in ("vo", "va", "freq", "td", "theta", "phase")]
    assert values == pytest.approx([0.5, 2.0, 50.0, 1e-3, 10.0, 90.0])


@pytest.mark.parametrize("spec, value", [("5", 5.0), ("DC 5", 5.0), ("dc -2.5mV", -2.5e-3)])
def test_dc_sources(spec, value):
    net = parse(f"V1 a 0 {spec}\nR1 a 0 1k\nI1 0 a {spec}")
    assert isinstance(source(net), DC)
    assert float(source(net).value) == value
    assert float(net.circuit.isources.waveforms[0].value) == value


def test_ac_part_is_ignored_with_warning():
    with pytest.warns(NetlistWarning, match=r"line 2: V1: AC specification ignored"):
        net = parse("V1 a 0 DC 1 AC 1 0\nR1 a 0 1k")
    assert float(source(net).value) == 1.0


def test_source_without_value_is_zero_with_warning():
    with pytest.warns(NetlistWarning, match="V1: source has no value"):
        net = parse("V1 a b\nR1 a 0 1k\nR2 b 0 1k")
    assert float(source(net).value) == 0.0


def pulse_params(wave: Pulse):
    return [float(getattr(wave, k)) for k in ("v1", "v2", "td", "tr", "tf", "pw", "per")]


def test_pulse_defaults_from_tran():
    net = parse("V1 a 0 PULSE(0 1)\nV2 b 0 PULSE(0 1 1m 0 0 0 0)\nR1 a b 1k\n.tran 1u 10m")
    assert pulse_params(source(net, 0)) == pytest.approx([0, 1, 0, 1e-6, 1e-6, 1e-2, 1e-2])
    assert pulse_params(source(net, 1)) == pytest.approx([0, 1, 1e-3, 1e-6, 1e-6, 1e-2, 1e-2])


def test_pulse_defaults_without_tran():
    net = parse("V1 a 0 PULSE(0 1 1m)\nR1 a 0 1k")
    assert pulse_params(source(net)) == [0, 1, 1e-3, 0, 0, math.inf, math.inf]


def test_pulse_explicit():
    net = parse("V1 a 0 PULSE(-1 1 1n 2n 3n 4n 10n)\nR1 a 0 1k\n.tran 1p 1u")
    assert pulse_params(source(net)) == pytest.approx([-1, 1, 1e-9, 2e-9, 3e-9, 4e-9, 1e-8])


def test_pwl():
    net = parse("I1 0 a PWL(0 0 1m 1m, 2ms 0.5mA 3m 0)\nR1 a 0 1k")
    wave = net.circuit.isources.waveforms[0]
    assert isinstance(wave, PWL)
    np.testing.assert_allclose(wave.times, [0, 1e-3, 2e-3, 3e-3])
    np.testing.assert_allclose(wave.values, [0, 1e-3, 5e-4, 0])


def test_transient_function_wins_over_dc():
    wave = source(parse("V1 a 0 DC 3 PWL(0 0 1 1)\nR1 a 0 1k"))
    assert isinstance(wave, PWL)


# -- .tran ---------------------------------------------------------------------------------------


def test_tran():
    assert parse("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m").tran == Tran(1e-6, 1e-3, False)
    assert parse("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m uic").tran == Tran(1e-6, 1e-3, True)
    assert parse("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m 0 10u UIC").tran.uic
    assert parse("V1 a 0 1\nR1 a 0 1k").tran is None


def test_tran_tstart_warns():
    with pytest.warns(NetlistWarning, match=r"line 4: TSTART=0.5m .*ignored"):
        net = parse("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m 0.5m")
    assert net.tran == Tran(1e-6, 1e-3)


@pytest.mark.parametrize(
    "card, text",
    [
        (".tran", "expected '.tran TSTEP TSTOP"),
        (".tran 1u 1m 0 1u 1u", "expected '.tran TSTEP TSTOP"),
        (".tran -1u 1m", "TSTEP must be positive"),
        (".tran 1u 0", "TSTOP must be positive"),
        (".tran 0", "TSTOP must be positive"),
        (".tran 1u 1m 2m", "TSTART"),
        (".tran 1u 1q2", "'1q2'"),
    ],
)
def test_tran_errors(card, text):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, text)


def test_second_tran():
    assert_error("V1 a 0 1\nR1 a 0 1k\n.tran 1u 1m\n.tran 1u 2m", 5, "second .tran", "line 4")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card",
    [
        "M1 d g s b nmos",
        "Q1 c b e npn",
        "E1 a 0 b 0 2",
        "K1 L1 L2 0.9",
        ".global a",
    ],
)
def test_unknown_card(card):
    message = assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, f"unknown card {card!r}")
    assert "supported cards are R, C, L, V, I, D" in message


def test_unknown_card_with_source_name():
    with pytest.raises(NetlistError) as info:
        parse_netlist(deck("V1 a 0 1\nQ1 a b c"), source="filter.cir")
    assert str(info.value).startswith("filter.cir, line 3: unknown card 'Q1 a b c'")


@pytest.mark.parametrize(
    "card, texts",
    [
        ("R2 a b", ["R2: missing resistance value", "'R2 a b'"]),
        ("C2 a 0", ["C2: missing capacitance value", "'C2 a 0'"]),
        ("L2 a 0 IC=1", ["L2: missing inductance value", "'L2 a 0 IC=1'"]),
        ("R2 a", ["R2: missing node names", "'R2 a'"]),
        ("D2 a 0", ["D2: missing model name", "'D2 a 0'"]),
        ("V2 a 0 DC", ["V2: DC without a value", "'V2 a 0 DC'"]),
        ("V2 a 0 SIN(0 1)", ["SIN takes", "'V2 a 0 SIN(0 1)'"]),
        ("V2 a 0 PULSE(1)", ["PULSE takes", "'V2 a 0 PULSE(1)'"]),
        ("V2 a 0 PWL(0 1 2)", ["PWL takes", "'V2 a 0 PWL(0 1 2)'"]),
        ("V2 a 0 SIN(0 1 1k", ["missing ')'", "'V2 a 0 SIN(0 1 1k'"]),
    ],
)
def test_missing_value(card, texts):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, *texts)


@pytest.mark.parametrize(
    "card, token",
    [
        ("R2 a 0 1x2", "'1x2'"),
        ("R2 a 0 1k2", "'1k2'"),
        ("C2 a 0 10%", "'10%'"),
        ("V2 a 0 DC 1..2", "'1..2'"),
        ("V2 a 0 SIN(0 1 abc)", "'abc'"),
        ("V2 a 0 PWL(0 0 1m 1q3)", "'1q3'"),
    ],
)
def test_unparsable_value(card, token):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, token, card)


def test_unexpected_extra_fields():
    assert_error("V1 a 0 1\nR1 a 0 1k TC1=0.1", 3, "unexpected 'TC1 = 0.1'", "R1")
    assert_error("V1 a 0 1 foo\nR1 a 0 1k", 2, "unexpected 'foo'")
    assert_error("V1 a 0 EXP(0 1)\nR1 a 0 1k", 2, "EXP is not supported")
    assert_error("V1 a 0 SIN(0 1 1k) PWL(0 0 1 1)\nR1 a 0 1k", 2, "two transient functions")
    assert_error(
        "V1 a 0 1\nR1 a b 1k\nD1 b 0 DD 2\n.model DD D", 4, "unexpected '2' after the model"
    )


def test_duplicate_element_name():
    message = assert_error("V1 a 0 1\nR1 a 0 1k\nr1 a 0 2k", 4, "duplicate element name 'r1'")
    assert "first defined on line 3" in message
    assert "'r1 a 0 2k'" in message


def test_undefined_model():
    assert_error("V1 a 0 1\nR1 a b NOPE\nR2 b 0 1k", 3, "'NOPE'", "no .model named 'NOPE'")
    assert_error("V1 a 0 1\nR1 a b 1k\nD1 b 0 DX", 4, "no .model named 'DX'", "'D1 b 0 DX'")


@pytest.mark.parametrize(
    "card, model, texts",
    [
        ("R2 a 0 DD", ".model DD D(IS=1n)", ["model 'DD' (line 5) has type D", "FMEM"]),
        ("D2 a 0 MEM", ".model MEM FMEM(g=1 alpha=1)", ["type FMEM", "type D"]),
        ("C2 a 0 MEM", ".model MEM FMEM(g=1 alpha=1)", ["type FMEM", "FCAP or NCAP"]),
        ("L2 a 0 NC", ".model NC NCAP(c=1)", ["type NCAP", "NIND"]),
    ],
)
def test_wrong_model_type(card, model, texts):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}\n{model}", 4, card, *texts)


@pytest.mark.parametrize(
    "model, texts",
    [
        (".model M1 FMEM(g=1m alpha=1.5)", ["alpha=1.5 must lie in (0, 1]", "'M1'"]),
        (".model M1 FMEM(g=1m alpha=0)", ["alpha=0 must lie in (0, 1]"]),
        (".model M1 FMEM(g=1m alpha=-0.5)", ["alpha=-0.5 must lie in (0, 1]"]),
        (".model M1 FCAP(c=1u alpha=1.01)", ["alpha=1.01 must lie in (0, 1]"]),
        (".model M1 FCAP(c=1u alpha=0)", ["alpha=0 must lie in (0, 1]"]),
        (".model M1 FMEM(g=0 alpha=0.5)", ["g=0 must be positive"]),
        (".model M1 FMEM(g=1 alpha=0.5 law=tanh psi0=-1)", ["psi0=-1 must be positive"]),
        (".model M1 NCAP(c=-1n)", ["c=-1e-09 must be positive"]),
        (".model M1 NIND(l=1m law=sinh phi0=0)", ["phi0=0 must be positive"]),
        (".model M1 D(IS=0)", ["IS=0 must be positive"]),
        (".model M1 FMEM(g=1m)", ["missing required parameter 'alpha'"]),
        (".model M1 FCAP(alpha=0.5)", ["missing required parameter 'c'"]),
        (".model M1 FMEM(g=1m alpha=0.5 beta=2)", ["unknown parameter 'beta'"]),
        (".model M1 NCAP(c=1n vv0=2)", ["unknown parameter 'vv0'"]),
        (".model M1 FMEM(g=1m alpha=0.5 law=quartic)", ["unknown law 'quartic'", "tanh"]),
        (".model M1 NPN(BF=100)", ["unknown type 'NPN'"]),
        (".model M1 FMEM(g=1m g=2m alpha=1)", ["parameter 'g' is given twice"]),
        (".model M1 FMEM(g=1m alpha)", ["expected 'param=value' at 'alpha'"]),
        (".model M1 FMEM(g=1m alpha=0.5", ["missing ')'"]),
        (".model M1 FMEM(g=1m alpha=0.5.1)", ["'0.5.1'"]),
        (".model", ["expected '.model NAME TYPE"]),
    ],
)
def test_bad_models(model, texts):
    # The model need not be used to be checked; the error names the .model line.
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{model}", 4, *texts)


def test_model_defined_twice():
    assert_error(
        "V1 a 0 1\nR1 a 0 1k\n.model A D\n.model a D(N=2)", 5, "'a' is defined twice", "line 4"
    )


@pytest.mark.parametrize(
    "card, texts",
    [
        ("R2 a 0 0", ["R2", "must be positive", "'R2 a 0 0'"]),
        ("R2 a 0 -1k", ["R2", "must be positive", "'R2 a 0 -1k'"]),
        ("C2 a 0 0", ["C2", "must be positive", "'C2 a 0 0'"]),
        ("C2 a 0 -1u", ["C2", "must be positive", "'C2 a 0 -1u'"]),
        ("L2 a 0 0", ["L2", "must be positive", "'L2 a 0 0'"]),
        ("L2 a 0 -1m", ["L2", "must be positive", "'L2 a 0 -1m'"]),
        ("R2 a a 1k", ["R2", "both terminals", "'R2 a a 1k'"]),
    ],
)
def test_builder_errors_get_the_line(card, texts):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, *texts)


@pytest.mark.parametrize(
    "spec",
    ["PWL(0 0 1m 1 1m 2)", "PWL(0 0 2m 1 1m 2)", "PWL 1 0 0 1"],
)
def test_pwl_times_must_increase(spec):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\nI1 a 0 {spec}", 4, "PWL times must increase", spec)


def test_negative_pulse_time():
    assert_error("V1 a 0 PULSE(0 1 -1m)\nR1 a 0 1k", 2, "TD", "PULSE(0 1 -1m)")


@pytest.mark.parametrize("text", ["", "   \n\n  \t\n"])
def test_empty_netlist(text):
    with pytest.raises(NetlistError, match="empty netlist"):
        parse_netlist(text)


@pytest.mark.parametrize(
    "text", ["just a title", "just a title\n", "title\n* comment\n\n.tran 1u 1m\n.end\n"]
)
def test_netlist_with_only_a_title(text):
    with pytest.raises(NetlistError, match="no element cards") as info:
        parse_netlist(text)
    assert str(info.value).startswith("<netlist>: ")
    assert repr(text.splitlines()[0]) in str(info.value)


def test_floating_node():
    message = error_of("V1 a 0 1\nR1 a b 1k\nC1 b c 1u\nC2 c 0 1u")
    assert message.startswith("<netlist>: node 'c' has no DC path to ground"), message


def test_voltage_source_loop():
    message = error_of("V1 a 0 1\nV2 a b 1\nV3 b 0 1\nR1 a 0 1k")
    assert message.startswith("<netlist>: loop of voltage sources"), message
    for name in ("V1", "V2", "V3"):
        assert name in message


def test_build_error_names_the_file(tmp_path):
    path = tmp_path / "loop.cir"
    path.write_text("loop\nV1 a 0 1\nV2 a 0 2\n")
    with pytest.raises(NetlistError) as info:
        load_netlist(path)
    assert str(info.value).startswith(f"{path}: loop of voltage sources")


def test_load_netlist(tmp_path):
    path = tmp_path / "rc.cir"
    path.write_text("RC\nV1 in 0 1\nR1 in out 1k\nC1 out 0 1u\n.tran 1u 1m\n.end\n")
    net = load_netlist(path)
    assert net.title == "RC"
    assert net.tran == Tran(1e-6, 1e-3)
    bad = tmp_path / "bad.cir"
    bad.write_text("bad\nV1 in 0 1\nR1 in 0 1k\nQ1 c b e\n")
    with pytest.raises(NetlistError) as info:
        load_netlist(bad)
    assert str(info.value).startswith(f"{bad}, line 4: unknown card 'Q1 c b e'")


# -- .options method= ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "card, method",
    [
        (".options method=gear", "gear"),
        (".option METHOD = Trap", "trap"),
        (".opt method=euler", "euler"),
        (".options method=trapezoidal maxord=2", "trap"),
    ],
)
def test_options_method_is_read_without_warning(card, method):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetlistWarning)
        net = parse(f"V1 a 0 1\nR1 a b 1k\nC1 b 0 1u\n{card}")
    assert net.method == method
    assert net.warnings == ()
    assert f".options method={method}" in str(net)


def test_deck_without_method_leaves_it_unset():
    assert parse("V1 a 0 1\nR1 a 0 1k").method is None


def test_other_options_next_to_method_are_ignored_with_a_warning():
    with pytest.warns(NetlistWarning, match=r"line 5: \.options gmin=1e-12 ignored"):
        net = parse("V1 a 0 1\nR1 a b 1k\nC1 b 0 1u\n.options reltol=1e-4 method=gear gmin=1e-12")
    assert net.method == "gear"
    assert net.options.reltol == 1e-4


def test_unknown_method_option_is_an_error():
    message = assert_error(
        "V1 a 0 1\nR1 a 0 1k\n.options method=rk4", 4, "method='rk4'", ".options method=rk4"
    )
    assert "trap, gear, euler" in message


@pytest.mark.parametrize("card", [".options maxord=3", ".options method=gear maxord=6"])
def test_maxord_other_than_two_is_an_error(card):
    assert_error(f"V1 a 0 1\nR1 a 0 1k\n{card}", 4, "only maxord=2 is supported", card)


def test_option_without_value_is_an_error():
    assert_error("V1 a 0 1\nR1 a 0 1k\n.options method=", 4, "option method= has no value")
