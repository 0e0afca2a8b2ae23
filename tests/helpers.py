"""Shared test helpers: tree comparison, reference solutions, ngspice oracle, circuit builders."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np

import fracprop as fp

NETLISTS = Path(__file__).parent / "netlists"

# The lists the tests parametrize over, each with ids for pytest.
#: Every convolution-quadrature kernel.
KERNELS = (fp.GL(), fp.FBDF2())
KERNEL_IDS = ("GL", "FBDF2")
#: The blocked exact history backends (their block and leaf sizes at the defaults).
BLOCKED_BACKENDS = (fp.Dense(), fp.HLS())
BLOCKED_IDS = ("Dense", "HLS")
#: The transient estimators with their default settings.
ESTIMATORS = (fp.Autodiff(), fp.Replay(), fp.EP(), fp.CoupledLearning())


def tree_allclose(x, y, *, rtol=1e-5, atol=1e-8) -> bool:
    same = eqx.tree_equal(jax.tree.structure(x), jax.tree.structure(y))
    if not same:
        return False
    leaves = zip(jax.tree.leaves(x), jax.tree.leaves(y))
    return all(np.allclose(a, b, rtol=rtol, atol=atol) for a, b in leaves)


def mittag_leffler(alpha: float, z: float, dps: int = 60) -> float:
    """E_α(z) = Σ z^k / Γ(αk + 1) by its power series in high precision (|z| ≲ 10)."""
    with mpmath.workdps(dps):
        a, z = mpmath.mpf(alpha), mpmath.mpf(z)
        total, k = mpmath.mpf(0), 0
        while True:
            term = z**k / mpmath.gamma(a * k + 1)
            total += term
            if k > 10 and abs(term) < mpmath.mpf(10) ** (-dps + 5):
                break
            k += 1
        return float(total)


def fractional_rc(alpha: float, r: float = 1.0, c_alpha: float = 1.0, volts: float = 1.0):
    """Step V → resistor R → node 'out' → CPE (C_α, α) → ground."""
    b = fp.CircuitBuilder(f"fractional RC alpha={alpha}")
    b.vsource("V1", "in", "0", volts)
    b.resistor("R1", "in", "out", r)
    b.cpe("P1", "out", "0", c=c_alpha, alpha=alpha)
    return b.build()


def every_element_circuit():
    """A small nonlinear circuit that contains every element type."""
    b = fp.CircuitBuilder("every element")
    # Every pulse corner sits half a step (of the tests' 0.2 ms grid) off the time grid, so
    # that J is smooth in every parameter.
    b.vsource("V1", "in", "0", fp.Sin(0.1, 0.8, 40.0, td=0.33e-3, theta=5.0, phase=10.0))
    b.isource("I1", "0", "m", fp.Pulse(1e-5, 2e-4, 1.1e-3, 1.0e-3, 1.0e-3, 4.0e-3, 13.0e-3))
    b.resistor("R1", "in", "a", 200.0)
    b.diode("D1", "a", "b", is_=1e-12, n=1.5)
    b.resistor("R2", "b", "0", 1e3)
    b.capacitor("C1", "b", "0", 2e-6, law=fp.Tanh(0.5))
    b.inductor("L1", "a", "m", 0.05, law=fp.Sinh(2e-3))
    b.memristor("M1", "m", "0", g=1e-3, alpha=0.6, law=fp.Tanh(0.05))
    b.cpe("P1", "m", "0", c=1e-4, alpha=0.5)
    b.capacitor("C2", "m", "b", 1e-6, law=fp.Cubic(1.0))
    return b.build()


# ---------------------------------------------------------------------------- ngspice oracle


def have_ngspice() -> bool:
    return shutil.which("ngspice") is not None


def parse_ascii_raw(text: str) -> dict[str, np.ndarray]:
    lines = text.splitlines()
    nvars = npoints = None
    names: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("No. Variables:"):
            nvars = int(line.split(":")[1])
        elif line.startswith("No. Points:"):
            npoints = int(line.split(":")[1])
        elif line.startswith("Variables:"):
            for j in range(nvars):
                names.append(lines[i + 1 + j].split()[1].lower())
            i += nvars
        elif line.startswith("Values:"):
            i += 1
            break
        i += 1
    tokens = " ".join(lines[i:]).split()
    data = np.zeros((npoints, nvars))
    pos = 0
    for p in range(npoints):
        pos += 1  # point index
        for v in range(nvars):
            data[p, v] = float(tokens[pos])
            pos += 1
    return {name: data[:, k] for k, name in enumerate(names)}


def run_ngspice(netlist_path: Path) -> dict[str, np.ndarray]:
    """Run a netlist unchanged in ngspice batch mode and read its ASCII raw file."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "out.raw"
        env = dict(os.environ, SPICE_ASCIIRAWFILE="1")
        proc = subprocess.run(
            ["ngspice", "-b", "-r", str(raw), str(netlist_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp,
        )
        if proc.returncode != 0 or not raw.exists():
            raise RuntimeError(f"ngspice failed on {netlist_path}:\n{proc.stdout}\n{proc.stderr}")
        return parse_ascii_raw(raw.read_text())


__all__ = ["jnp"]
