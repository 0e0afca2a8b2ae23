"""The `fracprop simulate` command line."""

import re
import warnings

import numpy as np
import pytest
from helpers import NETLISTS

import fracprop as fp
from fracprop.experiments.cli import main


def test_default_example_writes_csv_and_plot(tmp_path, capsys):
    out, png = tmp_path / "out.csv", tmp_path / "out.png"
    # A fixed grid (--substeps 1): this test is about the files written.
    args = ["simulate", "-o", str(out), "--plot", str(png), "--tstop", "0.5", "--substeps", "1"]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "time,v(in),v(out)"
    assert len(lines) == 1 + 501  # one row per step, t = 0 included
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    assert data[0, 0] == 0.0 and data[-1, 0] == pytest.approx(0.5)
    assert png.stat().st_size > 1000


def test_netlist_nodes_are_lower_case_and_selectable(tmp_path):
    out = tmp_path / "rlc.csv"
    path = NETLISTS / "rlc_underdamped.cir"
    args = ["simulate", str(path), "-o", str(out), "--nodes", "B,a", "--quiet", "--substeps", "1"]
    assert main(args) == 0
    assert out.read_text().splitlines()[0] == "time,v(b),v(a)"


def test_every_node_by_default(tmp_path):
    out = tmp_path / "ladder.csv"
    path = NETLISTS / "rc_ladder_isource.cir"
    assert main(["simulate", str(path), "-o", str(out), "--substeps", "1"]) == 0
    assert out.read_text().splitlines()[0] == "time,v(n1),v(n2),v(n3)"


def test_progress_bar_on_long_runs(tmp_path, capsys):
    out = tmp_path / "o.csv"
    args = ["simulate", "-o", str(out), "--tstop", "0.3", "--progress-min", "100"]
    assert main(args + ["--substeps", "1"]) == 0
    assert "300/300 steps" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["simulate", "missing.cir"], "not found"),
        (["simulate", "."], "cannot read netlist '.'"),
        (["simulate", "--nodes", "zz"], "unknown node(s) zz"),
        (["simulate", "--dt", "-1"], "must be positive"),
        (["simulate", "--reltol", "0"], "--reltol (0.0) must be a positive number"),
        (["simulate", "--substeps", "0"], "--substeps (0) must be a positive integer"),
    ],
)
def test_errors_are_messages_not_tracebacks(tmp_path, capsys, args, message):
    assert main(args + ["-o", str(tmp_path / "x.csv")]) == 2
    assert message in capsys.readouterr().err


RC_DECK = """\
RC step response
V1 in 0 1
R1 in out 1k
C1 out 0 1u
.tran 0.1m 2m uic
.options reltol=1e-2 vntol=1e-6 abstol=1e-12
"""


def test_deck_options_set_the_time_error_control(tmp_path, capsys):
    deck = tmp_path / "rc.cir"
    deck.write_text(RC_DECK)
    out = tmp_path / "rc.csv"
    assert main(["simulate", str(deck), "-o", str(out)]) == 0
    loose = _internal_steps_said(capsys.readouterr().out)
    assert loose > 20  # TSTEP alone (20 steps) misses reltol = 1e-2 on this deck
    # v(out) = 1 − exp(−t/τ), τ = 1 ms: within reltol·max|v| + vntol at every output point.
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    err = np.abs(data[:, 2] - (1 - np.exp(-data[:, 0] / 1e-3)))
    assert np.max(err) <= 1e-2 * np.max(np.abs(data[:, 2])) + 1e-6
    # --reltol overrides the deck: a tighter tolerance needs more internal steps.
    assert main(["simulate", str(deck), "-o", str(out), "--reltol", "1e-3"]) == 0
    assert _internal_steps_said(capsys.readouterr().out) > loose


def _internal_steps_said(text: str) -> int:
    found = re.search(r"time-error control: (\d+) variable internal steps", text)
    assert found, text
    return int(found.group(1))


def test_netlist_warnings_are_one_plain_line_each(tmp_path, capsys):
    (tmp_path / "parts.inc").write_text("* parts\nC1 out 0 1u IC=0.5\n")
    deck = tmp_path / "deck.cir"
    deck.write_text("RC\nV1 in 0 1\nR1 in out 1k\n.include parts.inc\n.op\n.tran 0.1m 1m\n")
    args = ["simulate", str(deck), "-o", str(tmp_path / "x.csv"), "--quiet", "--substeps", "1"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert main(args) == 0
    assert not [w for w in record if issubclass(w.category, fp.NetlistWarning)]
    err = capsys.readouterr().err.splitlines()
    inc = tmp_path / "parts.inc"
    assert err == [
        f"{inc}:2: warning: C1: IC=0.5 ignored (fracprop starts from its own operating point "
        f"or from rest) (included from {deck}:4)",
        f"{deck}:5: warning: '.op' ignored",
    ]


def test_bad_netlist_reports_line(tmp_path, capsys):
    bad = tmp_path / "bad.cir"
    bad.write_text("title\nR1 a 0 1k\nQ1 a b c\n.tran 1u 1m\n")
    assert main(["simulate", str(bad), "-o", str(tmp_path / "x.csv")]) == 2
    assert "line 3" in capsys.readouterr().err


TINY_VALIDATE = """\
network:
  hidden: [2]
steps: 60
estimators: [replay, ep]
omega_tau: [1.0e-3, 1.0]
betas: [1.0e-1, 1.0e-2]
steps_sweep: [60]
alphas: [0.5]
periods: [1.0]
depths: [1]
widths: [2]
seeds: [0]
"""


def test_validate_writes_report_and_summary(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_VALIDATE)
    out = tmp_path / "report"
    assert main(["validate", str(cfg), "--out", str(out)]) == 0
    for name in ("report.json", "report.md", "cosine_vs_omega_tau.png", "error_vs_beta.png"):
        assert (out / name).exists(), name
    assert (out / "config.yaml").exists()  # the resolved config is saved with the results
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "replay_max_rel_err=" in summary and "ep_quasistatic_cos=" in summary
    # The output folder is never overwritten unless asked.
    assert main(["validate", str(cfg), "--out", str(out)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [
        ("stepz: 3\n", "unknown key 'stepz'"),
        ("steps: abc\n", "steps='abc' must be an integer"),
        ("network:\n  alfa: 0.5\n", "unknown key 'network.alfa'"),
        ("estimators: [magic]\n", "unknown estimator 'magic'"),
    ],
)
def test_validate_config_errors(tmp_path, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    assert main(["validate", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "bad.yaml" in err or "magic" in err


def test_default_validate_config_is_the_builtin_default():
    from pathlib import Path

    from fracprop.validation import ValidationConfig, load_validation_config

    path = Path(__file__).parent.parent / "configs" / "validate.yaml"
    assert load_validation_config(path) == ValidationConfig()


def test_version_flag_prints_the_package_version(capsys):
    import fracprop

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fracprop {fracprop.__version__}"


def test_validate_without_config_finds_the_checkout_default():
    # In a source checkout, `fracprop validate` with no CONFIG runs configs/validate.yaml.
    from fracprop.experiments.cli import _default_validate_config

    path = _default_validate_config()
    assert path is not None and path.name == "validate.yaml" and path.parent.name == "configs"


#: 400 steps of the deck's 0.5 µs, through the pulse's rise at 0.1 ms (keeps the runs short).
TSTOP = 2e-4


def _rlc_deck(tmp_path, options=""):
    path = tmp_path / "rlc.cir"
    text = (NETLISTS / "rlc_underdamped.cir").read_text()
    path.write_text(text.replace(".end", f"{options}\n.end") if options else text)
    return path


def _run_csv(tmp_path, path, *extra):
    out = tmp_path / "o.csv"
    args = ["simulate", str(path), "-o", str(out), "--quiet", "--tstop", str(TSTOP), *extra]
    assert main(args) == 0
    return np.loadtxt(out, delimiter=",", skiprows=1)


def _reference(path, method):
    import fracprop as fp

    net = fp.load_netlist(path)
    steps = int(round(TSTOP / net.tran.tstep))
    traj = fp.simulate(net.circuit, dt=net.tran.tstep, steps=steps, uic=net.tran.uic, method=method)
    return np.asarray(traj.v)


@pytest.mark.parametrize(
    "options, flags, method",
    [
        ("", [], "trap"),  # SPICE's default
        (".options method=gear", [], "gear"),  # the deck's method
        (".options method=gear", ["--method", "euler"], "euler"),  # the flag overrides it
        ("", ["--method", "GEAR"], "gear"),
    ],
)
def test_method_from_deck_and_flag(tmp_path, options, flags, method):
    path = _rlc_deck(tmp_path, options)
    data = _run_csv(tmp_path, path, *flags)
    ref = _reference(path, method)
    np.testing.assert_allclose(data[:, 1:], ref, rtol=1e-11, atol=1e-12)
    # The three methods give visibly different runs on this deck, so the match is specific.
    other = _reference(path, "euler" if method != "euler" else "trap")
    assert np.max(np.abs(data[:, 1:] - other)) > 1e-6


def test_unknown_method_flag_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--method", "rk4", "-o", str(tmp_path / "x.csv")])
    assert "invalid choice: 'rk4'" in capsys.readouterr().err
