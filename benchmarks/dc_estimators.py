"""Generalized EP against the analytic gradient on resistive networks at steady state.

One table: symmetric EP (nudge ±β) and coupled learning (clamp at y + η(T − y), one-sided
as Stern et al. use it, and symmetric ±η), plus their exact s → 0 limits, compared with the
analytic gradient `Analytic()` (which equals `jax.grad`, checked first) by cosine, relative
L2 error ``‖ĝ − g‖/‖g‖`` and norm ratio ``‖ĝ‖/‖g‖``, on

- ``linear``: `linear_regression()` (random linear network, 6 inputs, 32 hidden nodes,
  2 output pairs), batch of 16 training examples;
- ``diode``: `diode_classifier("iris", hidden=(16,))` (inputs ±2 V per standard deviation,
  16 hidden nodes with antiparallel diodes to ground, 3 output pairs), batch of 16.

    python benchmarks/dc_estimators.py [--quick] [--out DIR]

Ends with one line of key=value pairs (cosine and relative error of symmetric EP at β = 1e-2
and of coupled learning's limit, per network).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import jax

jax.config.update("jax_enable_x64", True)

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _common import metadata, summary_line, write_results  # noqa: E402

import fracprop.resistive as rn  # noqa: E402


@eqx.filter_jit
def estimate(est, problem, params, u, t):
    return est(problem, params, u, t)["g"]


def compare(g, ref):
    return {
        "cosine": float(g @ ref / (jnp.linalg.norm(g) * jnp.linalg.norm(ref))),
        "rel_err": float(jnp.linalg.norm(g - ref) / jnp.linalg.norm(ref)),
        "norm_ratio": float(jnp.linalg.norm(g) / jnp.linalg.norm(ref)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two strengths, < 60 s")
    parser.add_argument("--out", default="results/dc_estimators")
    args = parser.parse_args(argv)
    strengths = [1e-1, 1e-3] if args.quick else [1e-1, 1e-2, 1e-3, 1e-4]
    tasks = {
        "linear": rn.linear_regression(),
        "diode": rn.diode_classifier("iris", hidden=(16,)),
    }
    rows, summary = [], {}
    for name, task in tasks.items():
        problem, p = task.problem, task.params
        u, t = task.train[0][:16], task.train[1][:16]
        ref = estimate(rn.Analytic(), problem, p, u, t)
        check = compare(estimate(rn.Autodiff(), problem, p, u, t), ref)["rel_err"]
        if not check <= 1e-9:
            print(f"FAILED: analytic vs jax.grad on {name}: {check:.2e}", file=sys.stderr)
            return 1
        ests = {
            "EP symmetric": lambda s: rn.EP(s, symmetric=True),
            "EP one-sided": lambda s: rn.EP(s),
            "CL": lambda s: rn.CoupledLearning(s),
            "CL symmetric": lambda s: rn.CoupledLearning(s, symmetric=True),
        }
        for label, make in ests.items():
            for s in [*strengths, "limit"]:
                if s == "limit" and "symmetric" in label:
                    continue  # the limit does not depend on symmetry
                est = make(1.0) if s == "limit" else make(s)
                if s == "limit":
                    est = dataclasses.replace(est, limit=True)
                    label_s = label.replace(" one-sided", "")
                else:
                    label_s = label
                row = {"network": name, "estimator": label_s, "strength": s}
                row.update(compare(estimate(est, problem, p, u, t), ref))
                rows.append(row)
                print(
                    f"{name:6s} {label_s:13s} s={s!s:6s} cos {row['cosine']:.6f} "
                    f"rel {row['rel_err']:.2e} ratio {row['norm_ratio']:.3f}",
                    file=sys.stderr,
                )
                key = {("EP symmetric", 1e-3): "ep_sym_1e-3", ("CL", "limit"): "cl_limit"}.get(
                    (label, s)
                )
                if key:
                    summary[f"{name}_{key}_cos"] = row["cosine"]
                    summary[f"{name}_{key}_rel"] = row["rel_err"]
    # The markdown table: one row per (network, estimator), one column per strength.
    cols = [*strengths, "limit"]
    lines = [
        "| network | estimator | " + " | ".join(f"s={c}" for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    keys = dict.fromkeys((r["network"], r["estimator"]) for r in rows)
    for net, est in keys:
        cells = []
        for c in cols:
            r = [
                x
                for x in rows
                if x["network"] == net and x["estimator"] == est and x["strength"] == c
            ]
            cells.append(f"{r[0]['cosine']:.6f} / {r[0]['rel_err']:.1e}" if r else "")
        lines.append(f"| {net} | {est} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    meta = metadata(dtype="float64", batch=16)
    write_results(args.out, "dc_estimators", rows, meta, summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
