"""Partial training (Lin et al. 2026): train only a random fraction p of the resistances.

For each task and each p in {1, 0.5, 0.25, 0.1}, runs `fracprop.train` with
``train_fraction = p`` (the same seed, data, optimiser and number of steps) and records the
final loss over the initial loss and, for classification, the test accuracy. p = 1 is the
baseline in the same run; the figure is each p's final loss ratio over the p = 1 ratio.
Before training, the analytic gradient is checked against jax.grad on each task.

    python benchmarks/partial_training.py [--quick] [--out DIR]

Ends with one line of key=value pairs: ``<task>_p<p>_loss_ratio`` (final/initial training
loss), ``<task>_p<p>_test_accuracy`` (classification) for every task and p.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import jax

jax.config.update("jax_enable_x64", True)

from _common import metadata, summary_line, write_results  # noqa: E402

import fracprop as fp  # noqa: E402

FRACTIONS = (1.0, 0.5, 0.25, 0.1)


def configs(quick: bool) -> dict[str, fp.TrainConfig]:
    allostery = fp.load_train_config("configs/allostery.yaml")
    out = {"allostery": dataclasses.replace(allostery, steps=60 if quick else 200)}
    if not quick:
        out["regression"] = fp.load_train_config("configs/regression.yaml")
        out["iris"] = fp.load_train_config("configs/iris.yaml")
    return out


def check_gradient(cfg: fp.TrainConfig) -> float:
    """Relative difference between the analytic gradient and jax.grad at the initial point."""
    import fracprop.resistive as rn

    data = cfg.task.build(cfg.seed)
    u, t = data.train
    u, t = u[: cfg.batch_size], t[: cfg.batch_size]
    a = rn.Analytic()(data.problem, data.params, u, t)
    b = rn.Autodiff()(data.problem, data.params, u, t)
    return fp.validation.compare(a, b)["overall"]["rel_l2"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small task, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/partial_training")
    args = parser.parse_args(argv)

    rows, summary = [], {}
    for name, cfg in configs(args.quick).items():
        rel = check_gradient(cfg)
        if not rel <= 1e-9:
            print(f"FAILED: analytic gradient deviates from jax.grad by {rel:.2e}", file=sys.stderr)
            return 1
        for p in FRACTIONS:
            res = fp.train(dataclasses.replace(cfg, train_fraction=p))
            row = {"task": name, "p": p, "estimator": cfg.estimator.name, "steps": cfg.steps}
            row.update({k: v for k, v in res.summary.items() if isinstance(v, float)})
            rows.append(row)
            summary[f"{name}_p{p:g}_loss_ratio"] = res.summary["final_loss_ratio"]
            if "test_accuracy" in res.summary:
                summary[f"{name}_p{p:g}_test_accuracy"] = res.summary["test_accuracy"]
            print(f"{name:10s} p={p:<5g} {fp.train_summary_line(res.summary)}", file=sys.stderr)
    summary["quick"] = int(args.quick)
    write_results(args.out, "partial_training", rows, metadata(dtype="float64"), summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
