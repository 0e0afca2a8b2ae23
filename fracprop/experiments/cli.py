"""Command-line interface: ``fracprop simulate``, ``fracprop validate`` and ``fracprop train``."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from importlib import resources
from pathlib import Path

DEFAULT_NETLIST = "fractional_rc.cir"


def _default_netlist() -> Path:
    return Path(str(resources.files("fracprop") / "examples" / DEFAULT_NETLIST))


def _simulate(args: argparse.Namespace) -> int:
    import jax

    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import fracprop as fp

    path = Path(args.netlist) if args.netlist else _default_netlist()
    try:
        with warnings.catch_warnings():
            # printed below, one line each ("deck.cir:12: warning: ...")
            warnings.simplefilter("ignore", fp.NetlistWarning)
            netlist = fp.load_netlist(path)
    except FileNotFoundError:
        print(f"error: netlist {str(path)!r} not found", file=sys.stderr)
        return 2
    except OSError as e:  # a folder, no permission ...
        print(f"error: cannot read netlist {str(path)!r}: {e.strerror or e}", file=sys.stderr)
        return 2
    except fp.NetlistError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in netlist.notes:
        print(note.one_line(), file=sys.stderr)
    tran = netlist.tran
    dt = args.dt if args.dt is not None else (tran.tstep if tran else None)
    tstop = args.tstop if args.tstop is not None else (tran.tstop if tran else None)
    if dt is None or tstop is None:
        print(
            f"error: {path} has no .tran card; add '.tran TSTEP TSTOP' or pass --dt and --tstop",
            file=sys.stderr,
        )
        return 2
    if not (dt > 0 and tstop > 0):
        print(f"error: --dt ({dt}) and --tstop ({tstop}) must be positive", file=sys.stderr)
        return 2
    steps = max(int(round(tstop / dt)), 1)
    if args.reltol is not None and not (math.isfinite(args.reltol) and args.reltol > 0):
        print(f"error: --reltol ({args.reltol}) must be a positive number", file=sys.stderr)
        return 2
    if args.substeps is not None and args.substeps < 1:
        print(f"error: --substeps ({args.substeps}) must be a positive integer", file=sys.stderr)
        return 2
    nodes = list(netlist.circuit.node_names)
    if args.nodes:
        wanted = [n.strip().lower() for n in args.nodes.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in nodes]
        if unknown:
            print(
                f"error: --nodes names unknown node(s) {', '.join(unknown)}; "
                f"the circuit's nodes are {', '.join(nodes)}",
                file=sys.stderr,
            )
            return 2
        nodes = wanted
    progress = fp.TextProgress() if (steps >= args.progress_min and not args.quiet) else None
    uic = tran.uic if tran else False
    # The time-error control: --reltol, else the deck's .options RELTOL/VNTOL/ABSTOL, else
    # simulate's defaults; --substeps fixes the internal step instead.
    options = netlist.options
    tolerances = {
        key: value
        for key, value in (
            ("rtol", args.reltol if args.reltol is not None else options.reltol),
            ("atol", options.vntol),
            ("atol_current", options.abstol),
        )
        if value is not None
    }
    method = args.method or netlist.method or "trap"
    try:
        traj = fp.simulate(
            netlist.circuit,
            dt=dt,
            steps=steps,
            uic=uic or args.uic,
            method=method,
            progress=progress or fp.NoProgress(),
            dtype=jnp.float32 if args.float32 else None,
            substeps=args.substeps,
            **tolerances,
        )
    except (fp.SimulationError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    cols = [np.asarray(traj.ts)] + [np.asarray(traj.node(n)) for n in nodes]
    data = np.stack(cols, axis=1)
    header = ",".join(["time"] + [f"v({n})" for n in nodes])
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(out, data, delimiter=",", header=header, comments="", fmt="%.12e")
    if not args.quiet:
        print(f"wrote {out} ({steps + 1} rows, {len(nodes)} nodes)")
        if traj.error_estimate is not None:
            if traj.internal_steps is not None:
                grid = f"{int(traj.internal_steps)} variable internal steps"
            else:
                grid = f"{traj.substeps} internal steps per output step"
            print(
                f"time-error control: {grid}, "
                f"estimated error {float(traj.error_estimate):.3g} of the tolerance"
            )
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4))
        for k, n in enumerate(nodes):
            ax.plot(data[:, 0], data[:, k + 1], label=f"v({n})")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("voltage (V)")
        ax.set_title(netlist.title or path.name)
        ax.legend()
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        if not args.quiet:
            print(f"wrote {args.plot}")
    return 0


def _default_validate_config() -> Path | None:
    """``configs/validate.yaml`` of a source checkout, if there is one."""
    here = Path(__file__).resolve().parents[2] / "configs" / "validate.yaml"
    return here if here.exists() else None


def _validate(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import fracprop as fp
    from fracprop import validation

    path = Path(args.config) if args.config else _default_validate_config()
    try:
        cfg = validation.load_validation_config(path) if path else validation.ValidationConfig()
    except (fp.ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        print(
            f"error: output folder {str(out)!r} exists and is not empty; "
            "choose another --out or pass --overwrite",
            file=sys.stderr,
        )
        return 2
    source = str(path) if path else "built-in defaults"
    print(f"validating estimators against jax.grad ({source})", file=sys.stderr)
    report = validation.run_validation(
        cfg, progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True)
    )
    report["config_source"] = source
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    (out / "config.yaml").write_text(yaml.safe_dump(report["config"], sort_keys=False))
    for p in validation.write_report(report, out):
        print(f"wrote {p}")
    rows = report["sweeps"].get("omega_tau", [])
    summary = []
    replay = [r["rel_l2"] for r in rows if r["estimator"] == "replay"]
    if replay:
        summary.append(f"replay_max_rel_err={max(replay):.3e}")
    ep_qs = [r["cosine"] for r in rows if r["estimator"] == "ep" and r["omega_tau"] <= 0.01]
    if ep_qs:
        summary.append(f"ep_quasistatic_cos={min(ep_qs):.6f}")
    slopes = report.get("beta", {}).get("slopes", {})
    for k, v in slopes.items():
        summary.append(f"ep_beta_slope_{k}={v:.3f}")
    print(" ".join(summary))
    return 0


def _train(args: argparse.Namespace) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    import fracprop as fp

    try:
        cfg = fp.load_train_config(args.config)
    except fp.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out
    if out is None and args.resume is None:
        out = str(Path("runs") / "train" / Path(args.config).stem)
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        result = fp.train(
            cfg,
            out=out,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.quiet,
            log=log,
        )
    except fp.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (fp.TrainingError, fp.ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log(f"wrote {result.out}")
    print(fp.train_summary_line(result.summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    import fracprop

    parser = argparse.ArgumentParser(prog="fracprop", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {fracprop.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser(
        "simulate",
        help="transient analysis of a SPICE netlist",
        description="Transient analysis of a SPICE-subset netlist. Without NETLIST, runs the "
        "built-in fractional RC example.",
    )
    sim.add_argument("netlist", nargs="?", help="netlist file (default: built-in example)")
    sim.add_argument("-o", "--output", default="out.csv", help="CSV file (default out.csv)")
    sim.add_argument("--nodes", help="comma-separated nodes to write (default: all)")
    sim.add_argument("--plot", help="also write a plot (PNG) of the selected nodes")
    sim.add_argument("--dt", type=float, help="time step (default: the .tran TSTEP)")
    sim.add_argument("--tstop", type=float, help="end time (default: the .tran TSTOP)")
    sim.add_argument("--uic", action="store_true", help="start from rest (SPICE UIC)")
    sim.add_argument(
        "--reltol",
        type=float,
        help="relative tolerance of the time-error control (default: the deck's "
        ".options reltol, else 1e-3)",
    )
    sim.add_argument(
        "--substeps",
        type=int,
        help="a fixed number of internal steps per output step, without time-error control",
    )
    sim.add_argument(
        "--method",
        type=str.lower,
        choices=("trap", "gear", "euler"),
        help="integration method of C and L (default: the deck's .options method=, else trap)",
    )
    sim.add_argument("--float32", action="store_true", help="run in float32 (default float64)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    sim.add_argument(
        "--progress-min", type=int, default=2000, help="show a progress bar from this many steps"
    )
    sim.set_defaults(func=_simulate)
    val = sub.add_parser(
        "validate",
        help="compare every gradient estimator with jax.grad across regimes",
        description="Sweep the estimators against jax.grad through the full trajectory and "
        "write report.json, report.md and plots. Without CONFIG, runs configs/validate.yaml.",
    )
    val.add_argument("config", nargs="?", help="YAML config (default: configs/validate.yaml)")
    val.add_argument("--out", default="runs/validate", help="output folder")
    val.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out")
    val.set_defaults(func=_validate)
    tr = sub.add_parser(
        "train",
        help="train a task's network with a gradient estimator (YAML config)",
        description="Train with any estimator and optax optimiser; writes the resolved config, "
        "metrics.jsonl, checkpoint.eqx, params.eqx, summary.json and plots, and ends with one "
        "line of key=value pairs (final_loss_ratio=..., test_accuracy=... for classification).",
    )
    tr.add_argument("config", help="YAML config (see configs/)")
    tr.add_argument("--out", help="output folder (default runs/train/<config name>)")
    tr.add_argument("--resume", help="continue the run in this folder from its checkpoint")
    tr.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out")
    tr.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    tr.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
