"""Ordinary SPICE decks through `fracprop simulate` with default settings against a converged
ngspice run of the same circuit (gear, reltol 1e-7, maximum step TSTEP/20).

High-Q circuits at 100 steps per period over 20 periods are where backward Euler's numerical
damping shows (it halves the ringing); the defaults must be within 1 % of the swing."""

from pathlib import Path

import numpy as np
import pytest
from helpers import NETLISTS, have_ngspice, run_ngspice

from fracprop.experiments.cli import main

pytestmark = pytest.mark.skipif(not have_ngspice(), reason="ngspice is not installed")

DECKS = {
    # Series RLC, f0 = 1 kHz, Z0 = 6.28 Ω, Q = Z0/R = 31.4, step response.
    "series_rlc": (
        "series RLC, Q = 31.4\n"
        "V1 in 0 PULSE(0 1 0 1n 1n 1 2)\n"
        "R1 in a 0.2\n"
        "L1 a b 1m\n"
        "C1 b 0 25.33u\n"
        ".tran 10u 20m\n"
        ".end\n",
        "b",
    ),
    # Parallel tank, Q = R/Z0 = 20, driven at resonance by a sine current.
    "tank": (
        "parallel tank, Q = 20\n"
        "I1 0 t SIN(0 1m 1k)\n"
        "R1 t 0 125.7\n"
        "L1 t 0 1m\n"
        "C1 t 0 25.33u\n"
        ".tran 10u 20m\n"
        ".end\n",
        "t",
    ),
    # Third-order Butterworth LC ladder (1 kHz cut-off, 1 Ω terminations), step response.
    "butterworth": (
        "third-order Butterworth ladder\n"
        "V1 in 0 PULSE(0 1 0 1n 1n 1 2)\n"
        "RS in a 1\n"
        "C1 a 0 159.2u\n"
        "L2 a b 318.3u\n"
        "C3 b 0 159.2u\n"
        "RL b 0 1\n"
        ".tran 10u 10m\n"
        ".end\n",
        "b",
    ),
}


def converged_reference(text: str, tmp_path: Path) -> dict:
    lines = text.splitlines()
    tran = next(i for i, line in enumerate(lines) if line.lower().startswith(".tran"))
    tstep = lines[tran].split()[1]
    lines[tran] = f"{lines[tran]} 0 {float(tstep.rstrip('u')) / 20}u"
    lines.insert(tran + 1, ".options method=gear reltol=1e-7 abstol=1e-15 vntol=1e-12")
    deck = tmp_path / "reference.cir"
    deck.write_text("\n".join(lines) + "\n")
    return run_ngspice(deck)


@pytest.mark.parametrize("name", sorted(DECKS))
def test_default_settings_within_one_percent_of_the_swing(name, tmp_path):
    text, node = DECKS[name]
    deck = tmp_path / f"{name}.cir"
    deck.write_text(text)
    out = tmp_path / f"{name}.csv"
    assert main(["simulate", str(deck), "-o", str(out), "--quiet"]) == 0
    data = np.genfromtxt(out, delimiter=",", names=True)
    ref = converged_reference(text, tmp_path)
    exact = np.interp(data["time"], ref["time"], ref[f"v({node})"])
    swing = exact.max() - exact.min()
    err = np.abs(data[f"v{node}"] - exact).max() / swing
    # Measured with the defaults: 1.8e-4 (series RLC), 7.1e-5 (tank), 1.9e-5 (Butterworth).
    assert err <= 0.01, (name, err)


# Decks with diodes and source corners, at an output step (TSTEP) that a user would choose
# for a plot; on that grid alone their error is 0.6 %, 2.5 % and 1.7 % of the swing.
NETLIST_DECKS = {
    "halfwave_rectifier.cir": (".tran 1u 4m", ".tran 20u 4m"),
    "diode_clamp_inductor.cir": (".tran 0.25u 3m", ".tran 10u 3m"),
    "rc_pulse.cir": (".tran 2u 8m", ".tran 40u 8m"),
}


@pytest.mark.parametrize("name", sorted(NETLIST_DECKS))
def test_default_settings_meet_reltol_on_diode_and_pulse_decks(name, tmp_path):
    """Variable internal steps: within RELTOL·max|v| + VNTOL (the defaults, 1e-3 and 1 µV) of
    the converged reference at every output point (measured: 0.02, 0.32 and 0.04 of it)."""
    old, new = NETLIST_DECKS[name]
    text = (NETLISTS / name).read_text()
    assert old in text
    text = text.replace(old, new)
    deck = tmp_path / name
    deck.write_text(text)
    out = tmp_path / "out.csv"
    assert main(["simulate", str(deck), "-o", str(out), "--quiet"]) == 0
    data = np.genfromtxt(out, delimiter=",", names=True)
    ref = converged_reference(text, tmp_path)
    exact = np.interp(data["time"], ref["time"], ref["v(out)"])
    err = np.abs(data["vout"] - exact).max()
    assert err <= 1e-3 * np.abs(exact).max() + 1e-6, (name, err)
