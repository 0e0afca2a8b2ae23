"""Regime table: every gradient estimator against jax.grad, by ωτ (see docs/design.md).

Network: `fracprop.layered_network` (2 sampled inputs, hidden neurons = capacitor ∥ tanh
fractional memristor α = ½ to ground, 1 output with a capacitor, resistor synapses), every node
time constant τ = 1, inputs random multi-sines of base angular frequency ω = ωτ/τ; targets from
a perturbed teacher. The reference (the baseline of every ratio) is jax.grad of J (of J_1/2 for
`ep_half`) through the whole trajectory, computed in the same run.

    python benchmarks/gradient_correctness.py [--quick] [--out DIR]

Ends with one line of key=value pairs (replay_rel_err, ep_quasistatic_cos, …).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

from _common import metadata, write_results  # noqa: E402

import fracprop as fp  # noqa: E402
from fracprop import validation  # noqa: E402

ESTIMATORS = ("replay", "ep", "ep_symmetric", "ep_half", "ep_capacitor", "coupled")


def compact_table(rows) -> str:
    """Markdown: one row per estimator, one column per ωτ, cells ``cosine / rel. L2 error``."""
    values = sorted({r["omega_tau"] for r in rows})
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    lines = [
        "| estimator (cosine / rel. error) | " + " | ".join(f"ωτ={v:g}" for v in values) + " |",
        "|---" * (1 + len(values)) + "|",
    ]
    for n in names:
        cells = []
        for v in values:
            r = next(x for x in rows if x["estimator"] == n and x["omega_tau"] == v)
            cells.append(f"{r['cosine']:.5f} / {r['rel_l2']:.2g}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def quasi_static_rows(steps: int) -> list[dict]:
    """EP's exact β → 0 limit against jax.grad as ωτ → 0, with and without neuron memory.

    The default neurons are tanh fractional memristors (α = ½); with α = 1 they are memoryless
    nonlinear resistors. Shows whether EP converges to the gradient in the quasi-static limit.
    """
    rows = []
    for alpha in (0.5, 1.0):
        spec = dataclasses.replace(fp.NetworkSpec(), alpha=alpha)
        for wt in (1e-3, 1e-4):
            problem, u, targets = fp.regime_problem(wt, spec=spec, steps=steps)
            params = problem.params()
            ref = fp.Autodiff()(problem, params, u, targets)
            m = validation.compare(fp.EP(limit=True)(problem, params, u, targets), ref)["overall"]
            rows.append({"alpha": alpha, "omega_tau": wt, **m})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/gradient_correctness")
    args = parser.parse_args(argv)

    if args.quick:
        omega_tau, steps = (1e-3, 1e-2, 1.0, 10.0), 150
    else:
        omega_tau, steps = (1e-3, 1e-2, 0.1, 0.3, 1.0, 3.0, 10.0), 400
    cfg = validation.ValidationConfig(steps=steps, estimators=ESTIMATORS, omega_tau=omega_tau)
    t0 = time.perf_counter()
    rows = []
    for wt in omega_tau:
        point = validation._point(cfg, wt, ESTIMATORS)
        for r in point:
            r["omega_tau"] = wt
        rows.extend(point)
        print(f"omega_tau={wt:g} done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    elapsed = time.perf_counter() - t0

    # Correctness gate: the exact estimator must be exact before any number is published.
    replay_err = max(r["rel_l2"] for r in rows if r["estimator"] == "replay")
    if not replay_err <= 1e-9:
        print(f"FAILED: replay deviates from jax.grad by {replay_err:.3e}", file=sys.stderr)
        return 1

    qs = quasi_static_rows(steps)
    meta = metadata(dtype="float64", steps=steps, quick=args.quick, seconds=elapsed)
    out = write_results(args.out, "regime_table", rows, meta)
    write_results(args.out, "ep_quasi_static", qs, meta)
    table = compact_table(rows)
    (out / "regime_table.md").write_text(table + "\n")
    print(table)
    print("\nEP(limit=True) against jax.grad in the quasi-static limit:")
    for r in qs:
        print(
            f"  alpha={r['alpha']:g} omega_tau={r['omega_tau']:g}: cosine {r['cosine']:.6f}, "
            f"norm ratio {r['norm_ratio']:.5f}"
        )

    def cos(name, pred):
        return min(r["cosine"] for r in rows if r["estimator"] == name and pred(r["omega_tau"]))

    summary = {
        "replay_rel_err": f"{replay_err:.3e}",
        "ep_quasistatic_cos": f"{cos('ep', lambda x: x <= 0.01):.6f}",
        "ep_half_quasistatic_cos": f"{cos('ep_half', lambda x: x <= 0.01):.6f}",
        "ep_dynamic_cos": f"{cos('ep', lambda x: x >= 1.0):.4f}",
        "coupled_quasistatic_cos": f"{cos('coupled', lambda x: x <= 0.01):.6f}",
        "ep_limit_norm_ratio_frac_1e-4": f"{qs[1]['norm_ratio']:.5f}",
        "ep_limit_norm_ratio_alpha1_1e-4": f"{qs[3]['norm_ratio']:.5f}",
        "seconds": f"{elapsed:.1f}",
        "quick": int(args.quick),
    }
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
