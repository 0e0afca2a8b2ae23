"""DC solve + analytic gradient of random linear resistive networks, 10³ … 10⁶ edges.

Network: `fracprop.resistive.random_network` (a random recursive tree plus uniform random
edges, 8 edges per node, conductances uniform in [0.5, 1.5] S), 10 input nodes, 10 output
nodes, one example, float64. Job timed: `Analytic()` (one DC solve by Jacobi-preconditioned
CG, one adjoint solve, ``−Δv_e Δλ_e``), compiled once, then min/median of repeats. In the
same run, the dense-solve baseline (`DCSolver(method="dense")`) wherever the dense grounded
Laplacian has ≤ 4000 free nodes, and `jax.grad` through the implicit solve (`Autodiff()`).

Correctness before timing, at every size: the analytic gradient against `jax.grad` (≤ 1e-9
relative, max-norm; the two share the adjoint solve, so this checks the plumbing), central
finite differences on three edges (≤ 1e-6 of the largest entry; the independent check), and
CG against dense where dense runs (≤ 1e-9).

    python benchmarks/dc_scale.py [--quick] [--out DIR]

Ends with one line of key=value pairs: analytic_vs_grad_rel, cg_vs_dense_rel,
analytic_vs_fd_rel, max_edges, time_at_max_s, slope (log–log slope of the analytic time
against edges over 10⁴ … max).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import metadata, summary_line, warm_times, write_results  # noqa: E402

import fracprop.resistive as rn  # noqa: E402

DENSE_MAX_FREE = 4000


def case(n_edges: int, method: str):
    n_nodes = n_edges // 8
    net = rn.random_network(n_nodes, n_edges, n_inputs=10, seed=1)
    problem = rn.ResistiveProblem(
        net, list(range(n_nodes - 10, n_nodes)), solver=rn.DCSolver(method=method)
    )
    rng = np.random.default_rng(0)
    u = jnp.asarray(rng.uniform(-1, 1, 10))
    t = jnp.asarray(rng.uniform(-0.1, 0.1, 10))
    return problem, u, t


def timed(fn, args, repeats):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    out, times = warm_times(compiled, args, repeats)
    return out, compile_s, min(times), float(np.median(times))


def rel(a, b):
    return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10³ … 10⁵ edges, < 60 s")
    parser.add_argument("--out", default="results/dc_scale")
    args = parser.parse_args(argv)
    sizes = (
        [1_000, 10_000, 100_000]
        if args.quick
        else [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
    )
    repeats = 5
    rows, worst_grad, worst_dense, worst_fd, t_analytic = [], 0.0, 0.0, 0.0, {}
    for e in sizes:
        problem, u, t = case(e, "cg")
        p = problem.params()
        ana, comp, tmin, tmed = timed(lambda p: rn.Analytic()(problem, p, u, t)["g"], (p,), repeats)
        ref, gcomp, gmin, gmed = timed(lambda p: rn.Autodiff()(problem, p, u, t)["g"], (p,), 1)
        r = rel(ana, ref)
        worst_grad = max(worst_grad, r)
        if not r <= 1e-9:
            print(f"FAILED at {e} edges: analytic vs jax.grad {r:.2e}", file=sys.stderr)
            return 1
        # An independent check of the implicit derivative: central differences on 3 edges.
        loss = jax.jit(lambda g: problem.loss({"g": g}, u, t))
        h, fd_err = 1e-6, 0.0
        for k in (0, e // 2, e - 1):
            d = jnp.zeros_like(p["g"]).at[k].set(h)
            fd = (loss(p["g"] + d) - loss(p["g"] - d)) / (2 * h)
            fd_err = max(fd_err, float(abs(fd - ana[k]) / jnp.max(jnp.abs(ana))))
        worst_fd = max(worst_fd, fd_err)
        if not fd_err <= 1e-6:
            print(f"FAILED at {e} edges: analytic vs differences {fd_err:.2e}", file=sys.stderr)
            return 1
        row = {
            "edges": e,
            "nodes": problem.network.n_nodes,
            "free": problem.network.n_free,
            "analytic_min_s": tmin,
            "analytic_median_s": tmed,
            "analytic_compile_s": comp,
            "autodiff_s": gmin,
            "analytic_vs_grad_rel": r,
            "analytic_vs_fd_rel": fd_err,
        }
        t_analytic[e] = tmin
        if problem.network.n_free <= DENSE_MAX_FREE:
            dproblem, _, _ = case(e, "dense")
            dense, dcomp, dmin, dmed = timed(
                lambda p: rn.Analytic()(dproblem, p, u, t)["g"], (p,), repeats
            )
            rd = rel(ana, dense)
            worst_dense = max(worst_dense, rd)
            if not rd <= 1e-9:
                print(f"FAILED at {e} edges: CG vs dense {rd:.2e}", file=sys.stderr)
                return 1
            row.update(
                dense_min_s=dmin,
                dense_median_s=dmed,
                dense_compile_s=dcomp,
                cg_vs_dense_rel=rd,
                dense_over_cg=dmin / tmin,
            )
        rows.append(row)
        print(
            f"{e:>9d} edges: analytic {tmin:.4f} s (compile {comp:.1f} s), jax.grad {gmin:.4f} s"
            + (f", dense {row['dense_min_s']:.4f} s" if "dense_min_s" in row else ""),
            file=sys.stderr,
        )
    big = [e for e in sizes if e >= 10_000]
    slope = float(np.polyfit(np.log(big), np.log([t_analytic[e] for e in big]), 1)[0])
    summary = {
        "analytic_vs_grad_rel": worst_grad,
        "cg_vs_dense_rel": worst_dense,
        "analytic_vs_fd_rel": worst_fd,
        "max_edges": sizes[-1],
        "time_at_max_s": t_analytic[sizes[-1]],
        "slope": slope,
        "quick": int(args.quick),
    }
    meta = metadata(dtype="float64", solver="Jacobi-PCG, cg_rtol=1e-12", edges_per_node=8)
    write_results(args.out, "dc_scale", rows, meta, summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
