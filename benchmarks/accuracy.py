"""Work–precision: error against a converged reference versus wall time, per scheme.

Three circuits, all on a fixed output grid whose step is varied:
- ``rlc``: a series RLC step response from rest, Q = 31.4, f0 = 1 kHz, 20 periods;
  reference: the closed form of the underdamped step response;
- ``rectifier``: a half-wave diode rectifier (5 V, 1 kHz sine; diode into 1 kΩ ∥ 10 µF),
  5 periods; reference: ngspice (gear, reltol 1e-7, maximum step 1/20 of the finest
  TSTEP) when installed, else fracprop's trapezoidal rule at 16 internal steps per finest
  step (the ``reference`` column says which);
- ``fractional_rc``: the fractional RC step response, R = C_α = 1, α = 0.5, 4 time constants;
  reference: 1 − E_α(−t^α) from `pymittagleffler` (independent of fracprop).

Schemes: for the integer-order circuits backward Euler (``euler``), the trapezoidal rule
(``trap``) and Gear-2 (``gear``) on the output grid, and the default (trap on variable
internal steps under local-truncation-error control, rtol 1e-3; ``k`` is then the number of
internal steps); for the fractional RC, Grünwald–Letnikov (``gl``), FBDF2 without starting
weights (``fbdf2``), FBDF2 with them (``fbdf2_sw``), and the default (FBDF2 with starting
weights and time-error control). The error is the largest absolute error over every output
point, t → 0 included, relative to the swing of the reference; the time is the best of
``--repeats`` warm runs (compilation excluded). The measured order is the log of the error ratio
over the log of the step ratio
between successive grids (meaningless for the rectifier, whose diode switches between grid
points: its error is not a power of the step).

    python benchmarks/accuracy.py [--quick] [--out DIR]

Ends with one line of key=value pairs: ``<case>_<scheme>_order`` (the order between the two
finest grids) and ``<case>_<scheme>_err`` / ``_time`` at the middle grid (the circuits'
nominal TSTEP: 100 steps per period, 1000 steps for the fractional RC).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _common import metadata, summary_line, write_results  # noqa: E402

import fracprop as fp  # noqa: E402

F0 = 1e3  # Hz, the integer-order circuits


def rlc(periods):
    b = fp.CircuitBuilder("series RLC, Q = 31.4")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "a", 0.2)
    b.inductor("L1", "a", "b", 1e-3)
    b.capacitor("C1", "b", "0", 25.33e-6)
    return b.build(), "b", periods / F0


def rlc_exact(ts):
    r, l, c = 0.2, 1e-3, 25.33e-6
    w0 = 1 / np.sqrt(l * c)
    zeta = r / 2 * np.sqrt(c / l)
    wd = w0 * np.sqrt(1 - zeta**2)
    return 1 - np.exp(-zeta * w0 * ts) * (
        np.cos(wd * ts) + zeta / np.sqrt(1 - zeta**2) * np.sin(wd * ts)
    )


RECTIFIER_DECK = """half-wave rectifier
V1 in 0 SIN(0 5 1k)
D1 in out DMOD
R1 out 0 1k
C1 out 0 10u
.model DMOD D(IS=1e-14 N=1)
.tran {tstep} {tstop}
.end
"""


def rectifier(periods, tstep):
    deck = RECTIFIER_DECK.format(tstep=tstep, tstop=periods / F0)
    return fp.parse_netlist(deck).circuit, "out", periods / F0


def ngspice_rectifier(periods, tstep):
    """``(ts, v_out)`` of a converged ngspice run, or ``None`` without ngspice."""
    if shutil.which("ngspice") is None:
        return None
    deck = RECTIFIER_DECK.format(tstep=tstep, tstop=periods / F0).replace(
        f".tran {tstep} {periods / F0}",
        f".tran {tstep} {periods / F0} 0 {tstep / 20}\n"
        ".options method=gear reltol=1e-7 abstol=1e-15 vntol=1e-12",
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rect.cir"
        path.write_text(deck.replace(".end", ".control\nrun\nwrdata out.txt v(out)\n.endc\n.end"))
        subprocess.run(["ngspice", "-b", str(path)], cwd=tmp, capture_output=True, timeout=300)
        data = np.loadtxt(Path(tmp) / "out.txt")
    return data[:, 0], data[:, 1]


def fractional_rc(alpha=0.5):
    b = fp.CircuitBuilder("fractional RC")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0)
    b.cpe("P1", "out", "0", c=1.0, alpha=alpha)
    return b.build(), "out", 4.0


def fractional_exact(ts, alpha=0.5):
    import pymittagleffler

    return 1 - pymittagleffler.mittag_leffler(-(ts**alpha), alpha, 1.0).real


INTEGER_SCHEMES = {
    "euler": dict(method="euler", substeps=1),
    "trap": dict(method="trap", substeps=1),
    "gear": dict(method="gear", substeps=1),
    "default": dict(),
}
FRACTIONAL_SCHEMES = {
    "gl": dict(kernel=fp.GL(), starting=False, substeps=1),
    "fbdf2": dict(kernel=fp.FBDF2(), starting=False, substeps=1),
    "fbdf2_sw": dict(kernel=fp.FBDF2(), substeps=1),
    "default": dict(),
}


def timed_run(circuit, node, dt, steps, kwargs, repeats, uic=False):
    def run():
        traj = fp.simulate(circuit, dt=dt, steps=steps, uic=uic, **kwargs)
        return jax.block_until_ready(traj)

    traj = run()  # compiles
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    grid = traj.substeps
    if grid is None:  # variable internal steps
        grid = f"{int(traj.internal_steps)} steps"
    return np.asarray(traj.ts), np.asarray(traj.node(node)), min(times), grid


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer grids, shorter runs")
    parser.add_argument("--out", default="benchmarks/results", help="output folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    per_period = [50, 100, 200] if args.quick else [25, 50, 100, 200, 400]
    frac_steps = [250, 1000, 4000] if args.quick else [125, 250, 500, 1000, 2000, 4000]
    periods = 5 if args.quick else 20
    rect_periods = 2 if args.quick else 5
    rows, summary = [], {}

    def record(case, scheme, points, errs, times, substeps, reference, middle):
        for pts, err, t, k in zip(points, errs, times, substeps):
            rows.append(
                dict(
                    case=case,
                    scheme=scheme,
                    steps=pts,
                    max_error_rel=err,
                    seconds=t,
                    substeps=k,
                    reference=reference,
                )
            )
        orders = np.log(np.asarray(errs[:-1]) / np.asarray(errs[1:])) / np.log(
            np.asarray(points[1:]) / np.asarray(points[:-1])
        )
        summary[f"{case}_{scheme}_order"] = float(orders[-1])
        summary[f"{case}_{scheme}_err"] = float(errs[middle])
        summary[f"{case}_{scheme}_time"] = float(times[middle])
        print(
            f"{case:14s} {scheme:8s} "
            + "  ".join(
                f"N={p}: {e:.2e} {t * 1e3:7.1f} ms k={k}"
                for p, e, t, k in zip(points, errs, times, substeps)
            )
            + "  orders "
            + " ".join(f"{o:.2f}" for o in orders),
            flush=True,
        )

    # ---- series RLC against its closed form
    circuit, node, t_end = rlc(periods)
    steps_list = [n * periods for n in per_period]
    for scheme, kw in INTEGER_SCHEMES.items():
        errs, times, subs = [], [], []
        for steps in steps_list:
            ts, v, t, k = timed_run(circuit, node, t_end / steps, steps, kw, args.repeats, True)
            exact = rlc_exact(ts)
            errs.append(np.abs(v - exact).max() / np.ptp(exact))
            times.append(t)
            subs.append(k)
        record("rlc", scheme, steps_list, errs, times, subs, "closed form", len(per_period) // 2)

    # ---- diode rectifier against ngspice
    steps_list = [n * rect_periods for n in per_period]
    finest = (rect_periods / F0) / steps_list[-1]
    ref = ngspice_rectifier(rect_periods, finest)
    reference = "ngspice"
    if ref is None:
        reference = "fracprop trap x16"
        c, node, t_end = rectifier(rect_periods, finest)
        traj = fp.simulate(c, dt=finest, steps=steps_list[-1], method="trap", substeps=16)
        ref = (np.asarray(traj.ts), np.asarray(traj.node(node)))
    for scheme, kw in INTEGER_SCHEMES.items():
        errs, times, subs = [], [], []
        for steps in steps_list:
            c, node, t_end = rectifier(rect_periods, (rect_periods / F0) / steps)
            ts, v, t, k = timed_run(c, node, t_end / steps, steps, kw, args.repeats)
            exact = np.interp(ts, *ref)
            errs.append(np.abs(v - exact).max() / np.ptp(exact))
            times.append(t)
            subs.append(k)
        record("rectifier", scheme, steps_list, errs, times, subs, reference, len(per_period) // 2)

    # ---- fractional RC against the Mittag-Leffler function
    circuit, node, t_end = fractional_rc()
    for scheme, kw in FRACTIONAL_SCHEMES.items():
        errs, times, subs = [], [], []
        for steps in frac_steps:
            ts, v, t, k = timed_run(circuit, node, t_end / steps, steps, kw, args.repeats)
            exact = fractional_exact(ts)
            errs.append(np.abs(v - exact).max() / np.ptp(exact))
            times.append(t)
            subs.append(k)
        middle = frac_steps.index(1000)
        record("fractional_rc", scheme, frac_steps, errs, times, subs, "pymittagleffler", middle)

    meta = metadata(benchmark="accuracy", quick=args.quick)
    out = write_results(args.out, "accuracy", rows, meta, summary)
    plot(rows, out / "accuracy.png", meta["command"])
    print(summary_line(summary))


def plot(rows, path, command):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4))
    for ax, case in zip(np.atleast_1d(axes), cases):
        for scheme in dict.fromkeys(r["scheme"] for r in rows if r["case"] == case):
            sel = [r for r in rows if r["case"] == case and r["scheme"] == scheme]
            ax.loglog(
                [r["seconds"] for r in sel], [r["max_error_rel"] for r in sel], "o-", label=scheme
            )
        ax.set_title(case)
        ax.set_xlabel("wall time per run (s)")
        ax.set_ylabel("max error / swing")
        ax.legend()
    fig.suptitle(command, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
