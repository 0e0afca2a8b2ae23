"""Benchmark: transient simulation throughput (steps/s) against N and batch size.

Two circuits with the same topology, built by `benchmark_network`:

- ``fractional``: 2 sampled voltage inputs, 4 hidden nodes (each a capacitor and a tanh
  fractional memristor, alpha = 0.5, to ground), 1 output node with a capacitor, and resistor
  synapses all-to-all input -> hidden -> output. The memristors keep the exact O(N) history per
  step (`fracprop.Exact`, O(N^2) per run), 2 history channels per memristor.
- ``integer``: the same network with every memristor replaced by a resistor of the same
  small-signal conductance: no fractional elements, no history. This is the in-run baseline;
  ``ratio_to_integer`` is the fractional time over the integer time at the same (N, batch).

A batch is `jax.vmap` over sampled input arrays passed as
``simulate(..., inputs={"V1": u1, "V2": u2}, throw=False)``; batch 1 is the unbatched call.
Every (case, N, batch) is compiled separately; ``compile_s`` is the first call (compile plus one
run). Before anything is timed, every lane must report ``result == 0`` with finite values, and
lane 0 of a batched run must equal the unbatched run on the same inputs (relative 1e-12 in
float64, 1e-5 in float32).

Columns: ``steps_per_s = N * batch / min_s`` (time steps of all lanes together) and
``channel_steps_per_s = steps_per_s * history channels`` (8 per fractional circuit; empty for
the integer case, which has none).

Usage::

    python benchmarks/simulate.py            # full run (about 3-4 min on a 2-core CPU)
    python benchmarks/simulate.py --quick    # < 60 s
    python benchmarks/simulate.py --float32 --out results/simulate_f32
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import GL_FIXED, cpu_model, git_commit, summary_line  # noqa: E402

import fracprop as fp

#: Period of the input signals (s); the node time constants are PERIOD / (2 pi), so omega*tau = 1.
PERIOD = 1e-3
#: Time steps per input period.
STEPS_PER_PERIOD = 64
DT = PERIOD / STEPS_PER_PERIOD
N_INPUTS, N_HIDDEN = 2, 4
#: Small-signal conductance of the hidden memristors (S) and the mean synapse conductance.
G_MEMRISTOR = 1e-4
G_SYNAPSE = 1e-4
#: Saturation of the memristor law in Psi = I^{1/2} v (V s^{1/2}). A hidden node swings about
#: 0.4 V, i.e. |Psi| ~ 0.4 V / sqrt(omega) ~ 5e-3, so the tanh is visibly nonlinear.
TANH_SCALE = 5e-3
ALPHA = 0.5

FULL_NS = (256, 1024, 4096, 16384)
FULL_BATCHES = (1, 8, 64)
QUICK_NS = (128, 512)
QUICK_BATCHES = (1, 8)
CASES = ("integer", "fractional")
COLUMNS = (
    "case",
    "N",
    "batch",
    "compile_s",
    "min_s",
    "median_s",
    "steps_per_s",
    "channel_steps_per_s",
    "ratio_to_integer",
)


def benchmark_network(fractional: bool = True) -> fp.Circuit:
    """The benchmark circuit: 2 inputs -> 4 hidden nodes -> 1 output, resistor synapses.

    Each hidden node has a capacitor and (``fractional=True``) a tanh fractional memristor of
    order ``ALPHA`` to ground, or (``fractional=False``) a resistor of the memristor's
    small-signal conductance. The synapse conductances are fixed pseudo-random values in
    ``[0.5, 1.5] * G_SYNAPSE`` (so the hidden nodes differ), and every capacitor is chosen from
    its node's total small-signal conductance so that ``omega * tau = 1`` at the input period.
    """
    rng = np.random.default_rng(1234)
    g_in = G_SYNAPSE * rng.uniform(0.5, 1.5, size=(N_INPUTS, N_HIDDEN))
    g_out = G_SYNAPSE * rng.uniform(0.5, 1.5, size=N_HIDDEN)
    tau = PERIOD / (2 * math.pi)

    b = fp.CircuitBuilder("benchmark: 2-4-1 fractional network" if fractional else "benchmark: RC")
    for i in range(N_INPUTS):
        b.vsource(f"V{i + 1}", f"in{i + 1}", "0", 0.0)
    for j in range(N_HIDDEN):
        h = f"h{j + 1}"
        for i in range(N_INPUTS):
            b.resistor(f"Rin{i + 1}{j + 1}", f"in{i + 1}", h, 1.0 / g_in[i, j])
        b.resistor(f"Rout{j + 1}", h, "out", 1.0 / g_out[j])
        g_node = g_in[:, j].sum() + g_out[j] + G_MEMRISTOR
        b.capacitor(f"Ch{j + 1}", h, "0", g_node * tau)
        if fractional:
            b.memristor(f"M{j + 1}", h, "0", g=G_MEMRISTOR, alpha=ALPHA, law=fp.Tanh(TANH_SCALE))
        else:
            b.resistor(f"Rm{j + 1}", h, "0", 1.0 / G_MEMRISTOR)
    b.capacitor("Cout", "out", "0", g_out.sum() * tau)
    return b.build()


def history_channels(circuit: fp.Circuit) -> int:
    """Fractional convolution channels: 2 per memristor (v and r(Psi)), 1 per CPE."""
    n = 0
    for g in circuit.groups:
        if isinstance(g, fp.Memristors):
            n += 2 * len(g)
        elif isinstance(g, fp.CPEs):
            n += len(g)
    return n


def make_inputs(batch: int, steps: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Two sampled inputs per lane, shape (batch, steps + 1): two tones with random phases."""
    rng = np.random.default_rng(0)
    t = np.arange(steps + 1) * DT
    w = 2 * math.pi / PERIOD
    out = []
    for _ in range(N_INPUTS):
        ph = rng.uniform(0, 2 * math.pi, size=(batch, 2))
        amp = rng.uniform(0.6, 1.0, size=(batch, 1))
        u = amp * np.sin(w * t + ph[:, :1]) + 0.3 * np.sin(2.3 * w * t + ph[:, 1:])
        out.append(u.astype(dtype))
    return out[0], out[1]


def make_runner(steps: int, dtype, batched: bool):
    def run(circuit, u1, u2):
        return fp.simulate(
            circuit,
            dt=DT,
            steps=steps,
            inputs={"V1": u1, "V2": u2},
            throw=False,
            dtype=dtype,
            **GL_FIXED,
        )

    if batched:
        run = jax.vmap(run, in_axes=(None, 0, 0))
    return jax.jit(run)


def check(traj, label: str) -> None:
    if not traj.ok:
        raise SystemExit(f"{label}: simulation failed: {traj.message()}")
    for name in ("v", "i_vsrc"):
        x = np.asarray(getattr(traj, name))
        if not np.all(np.isfinite(x)):
            raise SystemExit(f"{label}: non-finite values in Trajectory.{name}")


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - t0


def fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def print_table(rows) -> None:
    head = (
        f"{'case':<11}{'N':>7}{'batch':>7}{'compile_s':>11}{'min_s':>11}{'median_s':>11}"
        f"{'steps/s':>11}{'chan-steps/s':>14}{'frac/int':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['case']:<11}{r['N']:>7}{r['batch']:>7}{r['compile_s']:>11.3f}"
            f"{r['min_s']:>11.4f}{r['median_s']:>11.4f}{r['steps_per_s']:>11.3g}"
            f"{fmt(r['channel_steps_per_s'], '.3g'):>14}{fmt(r['ratio_to_integer'], '.2f'):>10}"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (< 60 s)")
    p.add_argument("--float32", action="store_true", help="run in float32 (default float64)")
    p.add_argument("--out", default="results/simulate", help="output directory")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; quick 3)")
    p.add_argument(
        "--budget-s",
        type=float,
        default=120.0,
        help="skip a (case, N, batch) whose predicted time (compile call + 3 repeats, "
        "extrapolated as N^2 from the previous N) exceeds this; 0 = never skip",
    )
    args = p.parse_args(argv)

    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float32 if args.float32 else jnp.float64
    np_dtype = np.float32 if args.float32 else np.float64
    tol = 1e-5 if args.float32 else 1e-12
    ns = QUICK_NS if args.quick else FULL_NS
    batches = QUICK_BATCHES if args.quick else FULL_BATCHES
    repeats = args.repeats or (3 if args.quick else 5)
    min_repeats = min(3, repeats)
    long_call_s = 2.0  # calls longer than this get only min_repeats repeats

    circuits = {case: benchmark_network(case == "fractional") for case in CASES}
    channels = {case: history_channels(c) for case, c in circuits.items()}
    u1_all, u2_all = make_inputs(max(batches), max(ns), np_dtype)

    device = jax.devices()[0]
    print(
        f"fracprop {fp.__version__}, jax {jax.__version__}, {device.platform} "
        f"({device.device_kind}), {os.cpu_count()} CPUs, {np.dtype(np_dtype).name}, "
        f"dt={DT:.4g} s ({STEPS_PER_PERIOD} steps per input period)",
        flush=True,
    )

    rows, extras, skipped = [], [], []
    last_min: dict[tuple[str, int], tuple[int, float]] = {}  # (case, batch) -> (N, min_s)
    for case in CASES:
        circuit = circuits[case]
        for n in ns:
            reference = None  # unbatched trajectory on lane 0's inputs
            for batch in batches:
                prev = last_min.get((case, batch))
                if prev is not None and args.budget_s > 0:
                    predicted = prev[1] * (n / prev[0]) ** 2 * (1 + min_repeats)
                    if predicted > args.budget_s:
                        msg = (
                            f"skipped {case} N={n} batch={batch}: predicted {predicted:.0f} s "
                            f"> --budget-s {args.budget_s:g}"
                        )
                        print(msg, flush=True)
                        skipped.append(
                            {"case": case, "N": n, "batch": batch, "predicted_s": predicted}
                        )
                        continue
                u1 = jnp.asarray(u1_all[:batch, : n + 1])
                u2 = jnp.asarray(u2_all[:batch, : n + 1])
                batched = batch > 1
                fn = make_runner(n, dtype, batched)
                fargs = (circuit, u1, u2) if batched else (circuit, u1[0], u2[0])

                t0 = time.perf_counter()
                traj = jax.block_until_ready(fn(*fargs))
                compile_s = time.perf_counter() - t0

                # ---- correctness, before any timing ----
                label = f"{case} N={n} batch={batch}"
                check(traj, label)
                if batched:
                    if reference is None:
                        ref_fn = make_runner(n, dtype, batched=False)
                        reference = jax.block_until_ready(ref_fn(circuit, u1[0], u2[0]))
                        check(reference, f"{case} N={n} unbatched reference")
                    lane0 = rel_diff(traj.v[0], reference.v)
                    lane0 = max(lane0, rel_diff(traj.i_vsrc[0], reference.i_vsrc))
                    if not lane0 <= tol:
                        raise SystemExit(
                            f"{label}: lane 0 differs from the unbatched run by {lane0:.3g} "
                            f"(relative), more than {tol:g}"
                        )
                else:
                    reference, lane0 = traj, 0.0
                iters = float(np.mean(np.asarray(traj.newton_iterations)[..., 1:]))
                del traj

                # ---- timing ----
                times = [timed(fn, *fargs)]
                n_rep = repeats if times[0] < long_call_s else min_repeats
                times += [timed(fn, *fargs) for _ in range(n_rep - 1)]
                t_min, t_med = min(times), statistics.median(times)
                last_min[(case, batch)] = (n, t_min)
                sps = n * batch / t_min
                row = {
                    "case": case,
                    "N": n,
                    "batch": batch,
                    "compile_s": compile_s,
                    "min_s": t_min,
                    "median_s": t_med,
                    "steps_per_s": sps,
                    "channel_steps_per_s": sps * channels[case] if channels[case] else None,
                    "ratio_to_integer": None,
                }
                rows.append(row)
                extras.append(
                    {
                        "repeats": len(times),
                        "times_s": times,
                        "compile_only_s_estimate": compile_s - t_min,
                        "lane0_rel_diff": lane0,
                        "newton_iterations_per_step": iters,
                    }
                )
                print(
                    f"{label:<28} compile {compile_s:7.2f} s  min {t_min:9.4f} s  "
                    f"median {t_med:9.4f} s  {sps:10.4g} steps/s  "
                    f"(x{len(times)}, lane0 diff {lane0:.1e}, {iters:.2f} Newton it/step)",
                    flush=True,
                )

    integer_min = {(r["N"], r["batch"]): r["min_s"] for r in rows if r["case"] == "integer"}
    for r in rows:
        base = integer_min.get((r["N"], r["batch"]))
        if base is not None:
            r["ratio_to_integer"] = r["min_s"] / base

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "simulate.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r[k] is None else r[k]) for k in COLUMNS})
    meta = {
        "benchmark": "simulate",
        "device": {
            "platform": device.platform,
            "device_kind": device.device_kind,
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
        },
        "jax_version": jax.__version__,
        "fracprop_version": fp.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "dtype": np.dtype(np_dtype).name,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "quick": bool(args.quick),
        "dt_s": DT,
        "input_period_s": PERIOD,
        "history": "Exact",
        "kernel": "GL",
        "history_channels": channels,
        "nodes": circuits["fractional"].n_nodes,
        "branches": len(circuits["fractional"].branch_names),
        "lane0_tolerance": tol,
        "skipped": skipped,
    }
    with open(out / "simulate.json", "w") as f:
        json.dump({"meta": meta, "rows": [r | e for r, e in zip(rows, extras)]}, f, indent=2)

    print()
    print_table(rows)
    for s in skipped:
        print(f"(skipped {s['case']} N={s['N']} batch={s['batch']}: over --budget-s)")
    print(f"wrote {out / 'simulate.csv'} and {out / 'simulate.json'}")

    frac = [r for r in rows if r["case"] == "fractional"]
    max_n = max(r["N"] for r in frac)
    at_max = {r["batch"]: r["ratio_to_integer"] for r in frac if r["N"] == max_n}
    summary = {
        "max_steps_per_s": max(r["steps_per_s"] for r in rows),
        "max_steps_per_s_fractional": max(r["steps_per_s"] for r in frac),
        "max_steps_per_s_integer": max(r["steps_per_s"] for r in rows if r["case"] == "integer"),
        "max_channel_steps_per_s": max(r["channel_steps_per_s"] for r in frac),
        "maxN": max_n,
        "fractional_over_integer_at_maxN": at_max.get(1),
        "fractional_over_integer_at_maxN_maxbatch": at_max[max(at_max)],
        "maxbatch_at_maxN": max(at_max),
        "correct": 1,
        "dtype": np.dtype(np_dtype).name,
        "quick": int(args.quick),
    }
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
