"""History backends against naive per-step GL: accuracy, time and scaling in N.

Two problems, both from rest with the GL kernel:
- the scalar problem D^{1/2} y = −λ y as a fractional RC (unit step through R = 1/λ into a CPE
  C_α = 1, α = ½; y = 1 − v_out = erfcx(λ√t)), and
- the benchmark network (`fracprop.BENCHMARK_NETWORK`: 16 inputs, 64 tanh-memristor neurons,
  4 outputs, 1280 synapses, ωτ ≈ 1).
Backends: `Dense` (block matrix products, exact; the reference for the accuracy columns), `HLS`
(block-triangular FFT, exact), `SOE` (tol 1e-12), and the baseline, the naive per-step
full-history convolution (`Exact`), all in the same run. All of them share the weights of
channels of the same order (the network's 128 channels have 2 orders). On the network a second
baseline, ``naive_per_channel``, is the naive convolution with one set of weights per channel
(`simulate(..., share_orders=False)`), as a naive implementation stores them; it reads twice
the memory per step. Each result is checked against Dense before its time is reported (exact
backends ≤ 1e-12 relative, SOE ≤ 1e-9).

    python benchmarks/history.py [--quick] [--out DIR]

Ends with one line of key=value pairs: soe_vs_dense_rel and hls_vs_dense_rel (largest relative
deviation from Dense over all runs), soe_slope, hls_slope, dense_slope, naive_slope (log–log
slope of time against N on the benchmark network; scalar_* on the scalar problem),
soe_speedup (naive time / SOE time at the largest N; also hls_, dense_), soe_speedup_per_channel
(naive_per_channel time / SOE time there), …
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import GL_FIXED, metadata, summary_line, write_results  # noqa: E402
from scipy.special import erfcx  # noqa: E402

import fracprop as fp  # noqa: E402


def scalar_case(steps, lam=1.0, t_end=1.0):
    b = fp.CircuitBuilder("scalar D^1/2 y = -lambda y")
    b.vsource("V1", "in", "0", 1.0)
    b.resistor("R1", "in", "out", 1.0 / lam)
    b.cpe("P1", "out", "0", c=1.0, alpha=0.5)
    return b.build(), {}, t_end / steps


def network_case(steps, horizon=20.0):
    circuit, inputs, _ = fp.benchmark_network()
    dt = horizon / steps
    ts = np.arange(steps + 1) * dt
    u = fp.multisine(len(inputs), ts, 1.0, seed=0)
    return circuit, {name: jnp.asarray(u[k]) for k, name in enumerate(inputs)}, dt


def timed(fn, repeats):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return out, first, min(times), float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/history")
    args = parser.parse_args(argv)
    if args.quick:
        # Compilation dominates at these sizes (16 compilations): two sizes per case.
        sizes = {"scalar": [1024, 4096], "network": [256, 1024]}
        naive_max = {"scalar": 4096, "network": 1024}
        repeats = 2
    else:
        sizes = {
            "scalar": [1024, 2048, 4096, 8192, 16384],
            "network": [1024, 2048, 4096, 8192, 16384],
        }
        naive_max = {"scalar": 16384, "network": 16384}
        repeats = 2
    # name: (backend, share the weights of channels of the same order)
    backends = {
        "naive": (fp.Exact(), True),
        "naive_per_channel": (fp.Exact(), False),
        "dense": (fp.Dense(), True),
        "hls": (fp.HLS(), True),
        "soe": (fp.SOE(tol=1e-12), True),
    }
    # Correctness gates, checked before any time is reported: the exact backends agree with
    # each other to round-off, SOE (tol 1e-12) to 1e-9.
    bounds = {"naive": 1e-12, "naive_per_channel": 1e-12, "hls": 1e-12, "soe": 1e-9}
    rows = []
    for case, build in (("scalar", scalar_case), ("network", network_case)):
        for n in sizes[case]:
            circuit, inputs, dt = build(n)
            results = {}
            case_rows = []
            for name, (hist, share) in backends.items():
                if name.startswith("naive") and n > naive_max[case]:
                    continue
                if name == "naive_per_channel" and case == "scalar":
                    continue  # one channel: nothing to share

                def run(hist=hist, share=share):
                    return fp.simulate(
                        circuit,
                        dt=dt,
                        steps=n,
                        inputs=inputs,
                        history=hist,
                        share_orders=share,
                        **GL_FIXED,
                    ).v

                v, first, tmin, tmed = timed(run, repeats)
                if not bool(jnp.all(jnp.isfinite(v))):
                    print(f"FAILED: non-finite result ({case}, {name}, N={n})", file=sys.stderr)
                    return 1
                results[name] = v
                row = {
                    "case": case,
                    "backend": name,
                    "N": n,
                    "first_s": first,
                    "min_s": tmin,
                    "median_s": tmed,
                    "channels": 2 * 64 if case == "network" else 1,
                }
                if case == "scalar":
                    ts = np.arange(n + 1) * dt
                    row["err_vs_erfcx"] = float(
                        np.max(np.abs((1 - np.asarray(v[:, 1])) - erfcx(np.sqrt(ts))))
                    )
                case_rows.append(row)
                print(f"{case:8s} {name:17s} N={n:6d} min {tmin:8.3f} s", file=sys.stderr)
            ref = results["dense"]
            for row in case_rows:
                v = results[row["backend"]]
                rel = float(jnp.max(jnp.abs(v - ref)) / jnp.max(jnp.abs(ref)))
                row["rel_vs_dense"] = rel
                bound = bounds.get(row["backend"])
                if bound is not None and not rel <= bound:
                    print(
                        f"FAILED: {row['backend']} deviates from dense by {rel:.2e} > {bound:g} "
                        f"({case}, N={n})",
                        file=sys.stderr,
                    )
                    return 1
            rows += case_rows

    def slope(case, backend):
        pts = [(r["N"], r["min_s"]) for r in rows if r["case"] == case and r["backend"] == backend]
        n, t = np.array(pts).T
        return float(np.polyfit(np.log(n), np.log(t), 1)[0])

    def at(case, backend, n):
        return next(
            r for r in rows if r["case"] == case and r["backend"] == backend and r["N"] == n
        )

    def worst(backend):
        return max(r["rel_vs_dense"] for r in rows if r["backend"] == backend)

    n_big = max(n for n in sizes["network"] if n <= naive_max["network"])
    naive_big = at("network", "naive", n_big)["min_s"]
    summary = {
        "soe_vs_dense_rel": worst("soe"),
        "hls_vs_dense_rel": worst("hls"),
        "naive_vs_dense_rel": worst("naive"),
        "soe_slope": slope("network", "soe"),
        "hls_slope": slope("network", "hls"),
        "dense_slope": slope("network", "dense"),
        "naive_slope": slope("network", "naive"),
        "scalar_soe_slope": slope("scalar", "soe"),
        "scalar_hls_slope": slope("scalar", "hls"),
        "scalar_dense_slope": slope("scalar", "dense"),
        "scalar_naive_slope": slope("scalar", "naive"),
        "soe_speedup": naive_big / at("network", "soe", n_big)["min_s"],
        "soe_speedup_per_channel": at("network", "naive_per_channel", n_big)["min_s"]
        / at("network", "soe", n_big)["min_s"],
        "hls_speedup": naive_big / at("network", "hls", n_big)["min_s"],
        "dense_speedup": naive_big / at("network", "dense", n_big)["min_s"],
        "speedup_N": n_big,
        "quick": int(args.quick),
    }
    write_results(args.out, "history", rows, metadata(dtype="float64"), summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
