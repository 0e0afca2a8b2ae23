"""Reverse-mode memory of `jax.grad` through each history backend, against N.

Case: `fracprop.regime_problem(1.0)` (the 2-4-1 network of tanh fractional memristors, α = ½,
ωτ = 1; 8 history channels), float64, GL kernel. For each backend (`Exact`, `Dense`, `HLS`,
`SOE`) and N, the compiled temporary memory (`memory_analysis().temp_size_in_bytes`, which
excludes the input arrays) of ``jax.jit(jax.grad(problem.loss))``, differentiating

- ``g``: the 28 synapse conductances only (the usual training case), and
- ``g+alpha``: the conductances and the four memristors' orders α.

Before anything is reported, the gradients of every backend must agree with `Exact` at the
smallest N (exact backends to 1e-10 relative, SOE tol 1e-12 to 1e-8). The baseline is SOE in
the same run: ``ratio_to_soe`` is a backend's memory over SOE's at the same N and selection.

    python benchmarks/grad_memory.py [--quick] [--out DIR]

Ends with one line of key=value pairs: ``<backend>_g_slope`` and ``<backend>_alpha_slope``
(log–log slope of temporary memory against N; 1 is O(N), 2 is O(N²)) and
``<backend>_alpha_ratio_to_soe`` at the largest N.
"""

from __future__ import annotations

import argparse
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from _common import metadata, summary_line, write_results  # noqa: E402

import fracprop as fp  # noqa: E402

BACKENDS = {"exact": fp.Exact(), "dense": fp.Dense(), "hls": fp.HLS(), "soe": fp.SOE(tol=1e-12)}


def problem_at(steps, history, with_alpha):
    problem, u, targets = fp.regime_problem(1.0, steps=steps)
    trainable = list(problem.trainable)
    if with_alpha:
        trainable += [
            (name, "alpha")
            for group in problem.circuit.groups
            if group.kind == "Memristors"
            for name in group.names
        ]
    return problem.replace(history=history, trainable=trainable), u, targets


def compiled_grad(steps, history, with_alpha):
    problem, u, targets = problem_at(steps, history, with_alpha)
    params = problem.params()
    fn = jax.jit(lambda p: jax.grad(problem.loss)(p, u, targets))
    return fn.lower(params).compile(), params


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/grad_memory")
    args = parser.parse_args(argv)
    sizes = [128, 256] if args.quick else [512, 1024, 2048]

    # Correctness is checked at the smallest N, before any size is reported: every backend's
    # gradient against Exact's.
    bounds = {"exact": 0.0, "dense": 1e-10, "hls": 1e-10, "soe": 1e-8}
    rows = []
    for with_alpha in (False, True):
        selection = "g+alpha" if with_alpha else "g"
        for n in sizes:
            mem, grads = {}, {}
            for name, hist in BACKENDS.items():
                compiled, params = compiled_grad(n, hist, with_alpha)
                mem[name] = compiled.memory_analysis().temp_size_in_bytes
                if n == sizes[0]:
                    grads[name] = compiled(params)
            for name, g in grads.items():
                rel = fp.validation.compare(g, grads["exact"])["overall"]["rel_l2"]
                if not rel <= bounds[name]:
                    print(
                        f"FAILED: {name} gradient deviates from Exact by {rel:.2e} > "
                        f"{bounds[name]:g} (N={n}, params={selection})",
                        file=sys.stderr,
                    )
                    return 1
            for name, temp in mem.items():
                rows.append(
                    {
                        "backend": name,
                        "params": selection,
                        "N": n,
                        "temp_bytes": temp,
                        "ratio_to_soe": temp / mem["soe"],
                    }
                )
                print(
                    f"{selection:8s} {name:6s} N={n:5d} temp {temp / 1e6:9.2f} MB", file=sys.stderr
                )

    def slope(name, selection):
        pts = [
            (r["N"], r["temp_bytes"])
            for r in rows
            if (r["backend"], r["params"]) == (name, selection)
        ]
        n, m = np.array(pts, dtype=float).T
        return float(np.polyfit(np.log(n), np.log(m), 1)[0])

    summary = {}
    for name in BACKENDS:
        summary[f"{name}_g_slope"] = slope(name, "g")
        summary[f"{name}_alpha_slope"] = slope(name, "g+alpha")
    for name in BACKENDS:
        last = next(
            r for r in rows if (r["backend"], r["params"], r["N"]) == (name, "g+alpha", sizes[-1])
        )
        summary[f"{name}_alpha_ratio_to_soe"] = last["ratio_to_soe"]
    summary["N_max"] = sizes[-1]
    summary["quick"] = int(args.quick)
    write_results(args.out, "grad_memory", rows, metadata(dtype="float64"), summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
