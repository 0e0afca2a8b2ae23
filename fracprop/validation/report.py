"""Tables, Markdown and figures of a validation run."""

from __future__ import annotations

import json
import math
from pathlib import Path


def _fmt(x) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        return f"{x:.6f}" if 1e-3 <= abs(x) < 1e4 or x == 0 else f"{x:.2e}"
    return str(x)


def regime_table(rows, axis="omega_tau", metrics=("cosine", "rel_l2")) -> str:
    """Markdown table: one row per estimator, one column per sweep value and metric."""
    values = sorted({r[axis] for r in rows})
    names = list(dict.fromkeys(r["estimator"] for r in rows))
    head = "| estimator | " + " | ".join(f"{m} @ {axis}={v:g}" for v in values for m in metrics)
    lines = [head + " |", "|---" * (1 + len(values) * len(metrics)) + "|"]
    for n in names:
        cells = []
        for v in values:
            r = next(x for x in rows if x["estimator"] == n and x[axis] == v)
            cells += [_fmt(r[m]) for m in metrics]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(report: dict) -> str:
    out = ["# Gradient validation report", ""]
    out.append(
        f"JAX {report['jax_version']} on {report['device']}, x64={report['x64']}, "
        f"{report['date']}. Reference: `jax.grad` of J (or J_1/2 for `ep_half`) through "
        "the whole trajectory."
    )
    batch = report.get("config", {}).get("batch", 1)
    if batch > 1:
        out += [
            "",
            f"Every gradient is the mean over {batch} examples per point, computed on "
            f"{report.get('devices', 1)} device(s).",
        ]
    for axis, rows in report["sweeps"].items():
        out += ["", f"## Sweep over {axis}", "", regime_table(rows, axis)]
    b = report.get("beta")
    if b:
        out += [
            "",
            f"## EP error against its own β → 0 limit (ωτ = {b['omega_tau']:g})",
            "",
            "| β | one-sided rel err | symmetric rel err |",
            "|---|---|---|",
        ]
        for beta in sorted({r["beta"] for r in b["rows"]}, reverse=True):
            one = next(r for r in b["rows"] if r["beta"] == beta and not r["symmetric"])
            sym = next(r for r in b["rows"] if r["beta"] == beta and r["symmetric"])
            out.append(f"| {beta:g} | {_fmt(one['rel_err'])} | {_fmt(sym['rel_err'])} |")
        out += [
            "",
            f"Fitted slopes of log error against log β: one-sided "
            f"{b['slopes']['one_sided']:.3f}, symmetric {b['slopes']['symmetric']:.3f}.",
        ]
    return "\n".join(out) + "\n"


def write_report(report: dict, out_dir) -> list[Path]:
    """Write ``report.json``, ``report.md`` and the plots; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md"]
    paths[0].write_text(json.dumps(report, indent=2, default=float))
    paths[1].write_text(markdown_report(report))
    rows = report["sweeps"].get("omega_tau", [])
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        styles = ["-o", "--s", ":^", "-.v", "-D", "--x", ":*"]
        for k, n in enumerate(dict.fromkeys(r["estimator"] for r in rows)):
            pts = sorted((r["omega_tau"], r["cosine"]) for r in rows if r["estimator"] == n)
            ax.semilogx(*zip(*pts), styles[k % len(styles)], label=n, alpha=0.85)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xlabel("ωτ (input angular frequency × node time constant)")
        ax.set_ylabel("cosine with jax.grad")
        ax.set_title("Estimator agreement by regime")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "cosine_vs_omega_tau.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    b = report.get("beta")
    if b:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for sym, label in ((False, "one-sided"), (True, "symmetric")):
            pts = sorted((r["beta"], r["rel_err"]) for r in b["rows"] if r["symmetric"] == sym)
            slope = b["slopes"]["symmetric" if sym else "one_sided"]
            ax.loglog(*zip(*pts), marker="o", label=f"{label} (slope {slope:.2f})")
        ax.set_xlabel("β")
        ax.set_ylabel("relative error vs β → 0 limit")
        ax.set_title(f"EP bias in β (ωτ = {b['omega_tau']:g})")
        ax.legend()
        fig.tight_layout()
        p = out / "error_vs_beta.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths
