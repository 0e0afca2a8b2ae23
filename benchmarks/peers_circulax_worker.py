"""circulax side of `benchmarks/peers.py`; runs inside circulax's own virtual environment.

circulax 0.1.7 pins an older JAX than fracprop, so it cannot share fracprop's environment.
`peers.py` creates a separate virtualenv, starts this script there once, and talks to it over
stdin/stdout, one JSON object per line (the log goes to stderr):

``{"cmd": "setup", "sections": n, "R": r, "C": c, "V": v, "T": t}``
    builds the RC ladder ``V1 -> R1 -> node 1 -> R2 -> ... -> node n``, each node with a
    capacitor ``C`` to ground, a step source ``V`` for ``t >= 0`` (circulax's
    ``VoltageSource``), and answers with the versions and the netlist.
``{"cmd": "run", "N": N, "repeats": k, "backend": "default"|"dense", "solver": "default"|"sdirk3",
  "out": path}``
    integrates ``[0, T]`` from rest with ``N`` constant steps (``dt = T / N``), saving every step
    (``SaveAt(ts=linspace(0, T, N + 1))``), inside ``jax.jit``. The first call (compile + run) is
    ``compile_s``; then ``k`` timed calls (more, up to 20, while less than 0.5 s is timed),
    each ended by ``jax.block_until_ready``. The capacitor
    voltages (``N + 1`` x ``n``) and the times are written to ``out`` (``.npz``); errors are
    computed by `peers.py` against its own exact solution.
``{"cmd": "quit"}``

Nothing here imports fracprop.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from importlib import metadata

import numpy as np

STATE: dict = {}


def log(msg: str) -> None:
    print(f"[circulax worker] {msg}", file=sys.stderr, flush=True)


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def setup(req: dict) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import circulax
    from circulax.components.electronic import Capacitor, Resistor, VoltageSource

    n = int(req["sections"])
    instances = {
        "GND": {"component": "ground"},
        "V1": {"component": "source_voltage", "settings": {"V": float(req["V"]), "delay": 0.0}},
    }
    connections: dict = {
        "GND,p1": ("V1,p2", *(f"C{k},p2" for k in range(1, n + 1))),
        "V1,p1": "R1,p1",
    }
    for k in range(1, n + 1):
        instances[f"R{k}"] = {"component": "resistor", "settings": {"R": float(req["R"])}}
        instances[f"C{k}"] = {"component": "capacitor", "settings": {"C": float(req["C"])}}
        connections[f"R{k},p2"] = (f"C{k},p1", *((f"R{k + 1},p1",) if k < n else ()))
    STATE.update(
        netlist={"instances": instances, "connections": connections},
        models={
            "resistor": Resistor,
            "capacitor": Capacitor,
            "source_voltage": VoltageSource,
            "ground": lambda: 0,
        },
        sections=n,
        T=float(req["T"]),
        compiled={},
    )
    dev = jax.devices()[0]
    return {
        "ok": True,
        "circulax_version": getattr(circulax, "__version__", None) or version("circulax"),
        "jax_version": jax.__version__,
        "jaxlib_version": version("jaxlib"),
        "diffrax_version": version("diffrax"),
        "klujax_version": version("klujax"),
        "python": sys.version.split()[0],
        "device": f"{dev.platform} ({dev.device_kind})",
        "netlist": STATE["netlist"],
    }


def circuit_for(backend: str):
    """(circuit, transient solver class or None) for a linear-solver backend, cached."""
    if backend not in STATE["compiled"]:
        from circulax import compile_circuit

        STATE["compiled"][backend] = compile_circuit(
            STATE["netlist"], STATE["models"], backend=backend
        )
    return STATE["compiled"][backend]


def transient_solver(circuit, solver: str):
    """None = circulax's default choice (a BDF2 variant); "sdirk3" = the matching SDIRK3."""
    if solver == "default":
        return None
    if solver != "sdirk3":
        raise ValueError(f"unknown solver {solver!r}")
    from circulax.solvers import transient as tr

    lin = circuit.solver
    if hasattr(lin, "refactor_jacobian"):
        return tr.SDIRK3RefactoringTransientSolver
    if hasattr(lin, "factor_jacobian"):
        return tr.SDIRK3FactorizedTransientSolver
    return tr.SDIRK3VectorizedTransientSolver


def run(req: dict) -> dict:
    import diffrax
    import jax
    import jax.numpy as jnp
    from circulax.solvers import setup_transient

    n_steps = int(req["N"])
    repeats = int(req.get("repeats", 0))
    backend = req.get("backend", "default")
    solver_name = req.get("solver", "default")
    T = STATE["T"]
    circuit = circuit_for(backend)
    tsolver = transient_solver(circuit, solver_name)
    sim = setup_transient(
        groups=circuit.groups, linear_strategy=circuit.solver, transient_solver=tsolver
    )
    ts_save = jnp.linspace(0.0, T, n_steps + 1)
    cap_idx = jnp.asarray([circuit.port_map[f"C{k},p1"] for k in range(1, STATE["sections"] + 1)])

    def integrate(y0):
        sol = sim(
            t0=0.0,
            t1=T,
            dt0=T / n_steps,
            y0=y0,
            saveat=diffrax.SaveAt(ts=ts_save),
            max_steps=n_steps + 2,
        )
        ok = sol.result == diffrax.RESULTS.successful
        return sol.ts, sol.ys[:, cap_idx], ok, sol.stats["num_steps"]

    fn = jax.jit(integrate)
    y0 = jnp.zeros(circuit.sys_size)  # from rest: every node voltage and source current zero

    t0 = time.perf_counter()
    ts, v, ok, nsteps = jax.block_until_ready(fn(y0))
    compile_s = time.perf_counter() - t0
    times = []  # same rule as peers.time_calls: short calls repeat until 0.5 s, at most 20
    while len(times) < repeats or (0 < len(times) < 20 and sum(times) < 0.5):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(y0)[1])
        times.append(time.perf_counter() - t0)
    np.savez(req["out"], ts=np.asarray(ts), v=np.asarray(v))
    return {
        "ok": bool(ok),
        "N": n_steps,
        "num_steps": int(nsteps),
        "compile_s": compile_s,
        "times_s": times,
        "backend": backend,
        "linear_solver": type(circuit.solver).__name__,
        "transient_solver": default_solver_name(circuit) if tsolver is None else tsolver.__name__,
        "solver": solver_name,
    }


def default_solver_name(circuit) -> str:
    """The class `setup_transient` picks when none is given (mirrors its own rule)."""
    lin = circuit.solver
    if hasattr(lin, "refactor_jacobian"):
        return "BDF2RefactoringTransientSolver"
    if hasattr(lin, "factor_jacobian"):
        return "BDF2FactorizedTransientSolver"
    return "BDF2VectorizedTransientSolver"


def main() -> int:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            cmd = req.get("cmd")
            if cmd == "quit":
                break
            if cmd == "setup":
                ans = setup(req)
            elif cmd == "run":
                ans = run(req)
            else:
                ans = {"ok": False, "error": f"unknown command {cmd!r}"}
        except Exception as exc:  # report to peers.py, keep serving
            log(traceback.format_exc())
            ans = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(ans), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
