"""Named benchmark networks and data for learning problems.

`layered_network` builds the standard network of the validation sweeps: sampled voltage inputs,
layers of hidden *neurons* (a capacitor to ground in parallel with a fractional memristor to
ground), output nodes with capacitors, and linear-resistor synapses all-to-all between
consecutive layers. Every node's capacitor is sized so that its time constant ``C / ΣG`` (over
the conductances at that node, synapses and memristor) equals ``tau``; then the regime is set by
``ωτ``, the input's angular frequency times ``tau``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from .._circuit.builder import CircuitBuilder
from .._circuit.circuit import Circuit
from .._circuit.laws import LAWS
from .problem import LearningProblem


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Shape and physics of a layered network (see `layered_network`)."""

    n_in: int = 2
    hidden: tuple[int, ...] = (4,)
    n_out: int = 1
    alpha: float = 0.5
    law: str = "tanh"
    psi0: float = 0.5
    g_mem: float = 1.0
    g_syn: tuple[float, float] = (0.5, 1.5)
    tau: float = 1.0
    hidden_capacitor_law: str = "linear"
    seed: int = 0

    def __post_init__(self):
        for key in ("law", "hidden_capacitor_law"):
            if getattr(self, key) not in LAWS:
                raise ValueError(
                    f"{key}={getattr(self, key)!r} is not a known law; use one of {', '.join(LAWS)}"
                )
        if self.n_in < 1 or self.n_out < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(
                f"n_in={self.n_in}, hidden={self.hidden}, n_out={self.n_out}: every layer needs "
                "at least one node"
            )
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha={self.alpha} must lie in (0, 1]")
        lo, hi = self.g_syn
        if not 0 < lo <= hi:
            raise ValueError(f"g_syn={self.g_syn} must be a range 0 < low <= high")
        if self.tau <= 0 or self.g_mem <= 0 or self.psi0 <= 0:
            raise ValueError("tau, g_mem and psi0 must be positive")


def layered_network(spec: NetworkSpec = NetworkSpec()) -> tuple[Circuit, tuple, tuple]:
    """Build the network; returns ``(circuit, input source names, output node names)``.

    Synapse conductances are drawn uniformly from ``spec.g_syn`` with ``spec.seed``.
    """
    rng = np.random.default_rng(spec.seed)
    b = CircuitBuilder(f"layered {spec.n_in}-{'-'.join(map(str, spec.hidden))}-{spec.n_out}")
    inputs = tuple(f"V{k}" for k in range(spec.n_in))
    layers = [[f"in{k}" for k in range(spec.n_in)]]
    for li, width in enumerate(spec.hidden):
        layers.append([f"h{li}_{k}" for k in range(width)])
    layers.append([f"out{k}" for k in range(spec.n_out)])
    for k, name in enumerate(inputs):
        b.vsource(name, layers[0][k], "0", 0.0)
    node_g: dict[str, float] = {}
    for li in range(1, len(layers)):
        for dst in layers[li]:
            for src in layers[li - 1]:
                g = float(rng.uniform(*spec.g_syn))
                b.resistor(f"R_{src}_{dst}", src, dst, g=g)
                node_g[dst] = node_g.get(dst, 0.0) + g
                if li - 1 > 0:
                    node_g[src] = node_g.get(src, 0.0) + g
    law_cls = LAWS[spec.law]
    for layer in layers[1:-1]:
        for node in layer:
            law = law_cls() if spec.law == "linear" else law_cls(spec.psi0)
            b.memristor(f"M_{node}", node, "0", g=spec.g_mem, alpha=spec.alpha, law=law)
            node_g[node] += spec.g_mem
            cap_cls = LAWS[spec.hidden_capacitor_law]
            cap_law = cap_cls() if spec.hidden_capacitor_law == "linear" else cap_cls(1.0)
            b.capacitor(f"C_{node}", node, "0", spec.tau * node_g[node], law=cap_law)
    for node in layers[-1]:
        b.capacitor(f"C_{node}", node, "0", spec.tau * node_g[node])
    return b.build(), inputs, tuple(layers[-1])


def multisine(n: int, ts: np.ndarray, omega: float, *, seed=0, tones: int = 3):
    """``n`` random multi-sine signals with base angular frequency ``omega`` (amplitude ≲ 1).

    ``seed`` is anything `numpy.random.default_rng` accepts (an integer or a tuple of them).
    """
    rng = np.random.default_rng(seed)
    out = np.zeros((n, ts.size))
    for k in range(n):
        for m in range(tones):
            amp = rng.uniform(0.2, 1.0) / tones
            out[k] += amp * np.sin(omega * (1 + 0.37 * m) * ts + rng.uniform(0, 2 * np.pi))
    return out


def regime_problem(
    omega_tau: float,
    *,
    spec: NetworkSpec = NetworkSpec(),
    steps: int = 400,
    periods: float = 1.0,
    min_horizon_tau: float = 10.0,
    teacher_perturbation: float = 0.3,
    seed: int = 0,
    batch: int | None = None,
):
    """A learning problem at a given ωτ: inputs, teacher targets, and the problem.

    The horizon covers ``periods`` periods of the base tone and at least ``min_horizon_tau``
    time constants. Targets are the outputs of a *teacher*: the same network with every
    synapse conductance scaled by ``1 + teacher_perturbation·U(−1, 1)``.

    With ``batch=B``, ``B`` examples for the same problem and teacher: example 0 is the
    unbatched example (input seed ``seed``), example ``k ≥ 1`` has multisine inputs drawn
    with the seed ``(seed, k)``.

    **Returns** ``(problem, inputs, targets)``: ``(n_in, steps + 1)`` and
    ``(n_out, steps + 1)``, or with a leading axis ``B`` when ``batch`` is given.

    **Raises** `ValueError` if ``batch`` is not a positive integer.
    """
    if batch is not None and not (isinstance(batch, int) and batch >= 1):
        raise ValueError(f"batch={batch!r} must be a positive integer (or None for one example)")
    circuit, inputs, outputs = layered_network(spec)
    omega = omega_tau / spec.tau
    horizon = max(periods * 2 * np.pi / omega, min_horizon_tau * spec.tau)
    dt = horizon / steps
    ts = np.arange(steps + 1) * dt
    seeds = [seed] if batch is None else [seed] + [(seed, k) for k in range(1, batch)]
    u = jnp.asarray(np.stack([multisine(spec.n_in, ts, omega, seed=s) for s in seeds]))
    problem = LearningProblem(circuit, inputs=inputs, outputs=outputs, dt=dt, steps=steps)
    rng = np.random.default_rng(seed + 1000)
    params = problem.params()
    teacher_params = _perturb(params, rng, teacher_perturbation)
    out = problem.output_indices()
    targets = jnp.stack([problem.simulate(teacher_params, x).v[:, out].T for x in u])
    if batch is None:
        return problem, u[0], targets[0]
    return problem, u, targets


def _perturb(params, rng, size):
    import jax

    def f(x):
        return x * (1 + size * jnp.asarray(rng.uniform(-1, 1, x.shape)))

    return jax.tree.map(f, params)


#: The named performance case of the benchmarks: 16 sampled voltage
#: inputs, 64 hidden neurons (capacitor ∥ tanh fractional memristor α = ½, to ground), 4 output
#: nodes with capacitors, 16·64 + 64·4 = 1280 linear synapses all-to-all between layers, every
#: node time constant τ = 1 (so inputs of angular frequency 1 give ωτ ≈ 1).
BENCHMARK_NETWORK = NetworkSpec(n_in=16, hidden=(64,), n_out=4, alpha=0.5, law="tanh")


def benchmark_network() -> tuple[Circuit, tuple, tuple]:
    """The benchmark network `BENCHMARK_NETWORK` (see there)."""
    return layered_network(BENCHMARK_NETWORK)
