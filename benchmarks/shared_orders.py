"""Weights shared by channels of the same order, against one set of weights per channel.

The benchmark network (`fracprop.BENCHMARK_NETWORK`: 64 tanh memristors of α = ½, so 128
history channels of two orders, ∓½) is simulated with every history backend twice in the same
run: with `simulate(..., share_orders=True)` (the default: the weights, Hankel rows, spectra or
exponential modes are computed and stored for the 2 orders, and `Dense` forms one matrix
product per order over its 64 channels) and with ``share_orders=False`` (the baseline: one set
per channel, as before sharing). The two trajectories are checked to agree to 1e-12 relative
before any time is reported. Reported per backend and N: forward time (min of the repeats,
after a warm-up call) and the compiled temporary memory (`memory_analysis()`).

    python benchmarks/shared_orders.py [--quick] [--out DIR]

Ends with one line of key=value pairs: ``<backend>_share_speedup`` (per-channel time / shared
time at the largest N), ``<backend>_share_mem_ratio`` (per-channel / shared temporary memory
there), ``max_rel_diff`` (largest relative deviation between the two, over all runs).
"""

from __future__ import annotations

import argparse
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from _common import GL_FIXED, metadata, summary_line, warm_times, write_results  # noqa: E402
from history import network_case  # noqa: E402

import fracprop as fp  # noqa: E402

BACKENDS = {"dense": fp.Dense(), "hls": fp.HLS(), "soe": fp.SOE(tol=1e-12), "exact": fp.Exact()}


def compiled_run(circuit, dt, steps, history, share):
    """The jitted forward pass with the circuit closed over: its orders are concrete, so
    `simulate` may share them."""

    def run(inputs):
        return fp.simulate(
            circuit,
            dt=dt,
            steps=steps,
            inputs=inputs,
            history=history,
            share_orders=share,
            **GL_FIXED,
        ).v

    return jax.jit(run)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/shared_orders")
    args = parser.parse_args(argv)
    sizes, repeats = ([512], 1) if args.quick else ([2048, 8192], 3)
    rows = []
    for n in sizes:
        circuit, inputs, dt = network_case(n)
        for name, history in BACKENDS.items():
            if name == "exact" and n > 4096:
                continue  # O(N²); the comparison is made at the smaller size
            outs = {}
            for share in (True, False):
                fn = compiled_run(circuit, dt, n, history, share)
                compiled = fn.lower(inputs).compile()
                temp = compiled.memory_analysis().temp_size_in_bytes
                v, times = warm_times(compiled, (inputs,), repeats)
                if not bool(jnp.all(jnp.isfinite(v))):
                    print(f"FAILED: non-finite result ({name}, N={n})", file=sys.stderr)
                    return 1
                outs[share] = v
                rows.append(
                    {
                        "backend": name,
                        "N": n,
                        "shared": share,
                        "min_s": min(times),
                        "temp_bytes": int(temp),
                    }
                )
            rel = float(jnp.max(jnp.abs(outs[True] - outs[False])) / jnp.max(jnp.abs(outs[False])))
            rows[-1]["rel_diff"] = rows[-2]["rel_diff"] = rel
            if not rel <= 1e-12:
                print(
                    f"FAILED: shared and per-channel weights differ by {rel:.2e} ({name}, N={n})",
                    file=sys.stderr,
                )
                return 1
            shared, per_channel = rows[-2], rows[-1]
            print(
                f"{name:6s} N={n:6d} shared {shared['min_s']:7.3f} s "
                f"{shared['temp_bytes'] / 1e6:8.1f} MB | per channel {per_channel['min_s']:7.3f} s "
                f"{per_channel['temp_bytes'] / 1e6:8.1f} MB | rel diff {rel:.1e}",
                file=sys.stderr,
            )

    summary = {}
    for name in BACKENDS:
        n_big = max(r["N"] for r in rows if r["backend"] == name)
        pair = {r["shared"]: r for r in rows if r["backend"] == name and r["N"] == n_big}
        summary[f"{name}_share_speedup"] = pair[False]["min_s"] / pair[True]["min_s"]
        summary[f"{name}_share_mem_ratio"] = pair[False]["temp_bytes"] / pair[True]["temp_bytes"]
        summary[f"{name}_N"] = n_big
    summary["max_rel_diff"] = max(r["rel_diff"] for r in rows)
    summary["quick"] = int(args.quick)
    write_results(args.out, "shared_orders", rows, metadata(dtype="float64"), summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
