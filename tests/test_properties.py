"""Property tests (hypothesis) on random passive circuits: KCL, passivity, superposition.

Each example compiles a new circuit, so the example counts are small; the circuits are drawn
over every element type, law and topology that the generators below allow.
"""

import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fracprop as fp

SETTINGS = dict(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
DT, STEPS = 2e-5, 40


@st.composite
def passive_circuits(draw, kinds=("R", "C", "L", "D", "M", "P"), linear=False):
    """A connected circuit: a resistor tree (DC paths) plus random extra elements and sources."""
    n = draw(st.integers(2, 4))
    nodes = [f"n{k}" for k in range(n)]
    b = fp.CircuitBuilder("random")
    log = st.floats(-1, 1)

    def pick_pair():
        a = draw(st.sampled_from(nodes))
        c = draw(st.sampled_from(["0"] + [x for x in nodes if x != a]))
        return a, c

    for k, node in enumerate(nodes):
        parent = "0" if k == 0 else draw(st.sampled_from(["0"] + nodes[:k]))
        b.resistor(f"RT{k}", node, parent, 1e3 * 10 ** draw(log))
    count = draw(st.integers(1, 5))
    for k in range(count):
        kind = draw(st.sampled_from(kinds))
        a, c = pick_pair()
        if kind == "R":
            b.resistor(f"R{k}", a, c, 1e3 * 10 ** draw(log))
        elif kind == "C":
            law = (
                fp.Linear()
                if linear
                else draw(st.sampled_from([fp.Linear(), fp.Tanh(0.5), fp.Cubic(1.0)]))
            )
            b.capacitor(f"C{k}", a, c, 1e-7 * 10 ** draw(log), law=law)
        elif kind == "L":
            law = (
                fp.Linear()
                if linear
                else draw(st.sampled_from([fp.Linear(), fp.Sinh(1e-4), fp.Cubic(1e-4)]))
            )
            b.inductor(f"L{k}", a, c, 1e-2 * 10 ** draw(log), law=law)
        elif kind == "D":
            b.diode(f"D{k}", a, c, is_=1e-14, n=draw(st.floats(1.0, 2.0)))
        elif kind == "M":
            law = fp.Linear() if linear else draw(st.sampled_from([fp.Linear(), fp.Tanh(0.05)]))
            b.memristor(
                f"M{k}", a, c, g=1e-3 * 10 ** draw(log), alpha=draw(st.floats(0.3, 1.0)), law=law
            )
        elif kind == "P":
            b.cpe(f"P{k}", a, c, c=1e-5 * 10 ** draw(log), alpha=draw(st.floats(0.3, 1.0)))
    freq = 1e3 * 10 ** draw(st.floats(-0.5, 0.5))
    b.vsource("V1", nodes[0], "0", fp.Sin(0.0, draw(st.floats(0.5, 3.0)), freq))
    b.isource("I1", "0", draw(st.sampled_from(nodes)), fp.Pulse(0, 1e-3, 1e-4, 1e-4, 1e-4, 2e-4))
    return b.build()


@settings(**SETTINGS)
@given(passive_circuits())
def test_kcl_holds_at_every_node_and_step(circuit):
    traj = fp.simulate(
        circuit, dt=DT, steps=STEPS, uic=True, saveat=fp.SaveAt(currents=True), substeps=1
    )
    n = circuit.n_nodes
    a, b = circuit.incidence()
    i_b = np.asarray(traj.i_branch)
    net = np.zeros((i_b.shape[0], n + 1))
    np.add.at(net.T, a, i_b.T)
    np.subtract.at(net.T, b, i_b.T)
    for k, (pa, pb) in enumerate(circuit.vsources.nodes):
        net[:, pa if pa >= 0 else n] += np.asarray(traj.i_vsrc[:, k])
        net[:, pb if pb >= 0 else n] -= np.asarray(traj.i_vsrc[:, k])
    for k, (pa, pb) in enumerate(circuit.isources.nodes):
        net[:, pa if pa >= 0 else n] += np.asarray(traj.i_isrc[:, k])
        net[:, pb if pb >= 0 else n] -= np.asarray(traj.i_isrc[:, k])
    largest = max(np.abs(i_b).max(), np.abs(np.asarray(traj.i_vsrc)).max())
    assert np.abs(net[:, :n]).max() <= 1e-9 * largest


def _stored_energy(circuit, traj):
    """Energy in capacitors, W = C(v s(v) − ∫s), and inductors, W = ∫ s(Φ) dΦ / L."""
    n = circuit.n_nodes
    v = np.concatenate([np.asarray(traj.v), np.zeros((traj.v.shape[0], 1))], axis=1)
    total = np.zeros(v.shape[0])
    for g in circuit.groups:
        ab = np.asarray(g.nodes).reshape(-1, 2)
        ab = np.where(ab < 0, n, ab)
        vb = v[:, ab[:, 0]] - v[:, ab[:, 1]]
        law = g.law if hasattr(g, "law") else None
        if isinstance(g, fp.Capacitors):
            c = np.asarray(g.c)
            if isinstance(law, fp.Linear):
                w = 0.5 * vb**2
            elif isinstance(law, fp.Tanh):
                s = np.asarray(law.scale)
                w = vb * s * np.tanh(vb / s) - s**2 * np.log(np.cosh(vb / s))
            else:  # Cubic
                s = np.asarray(law.scale)
                w = 0.5 * vb**2 + 0.75 * vb**4 / s**2
            total += (c * w).sum(axis=1)
        elif isinstance(g, fp.Inductors):
            phi = np.concatenate([np.zeros((1, vb.shape[1])), np.cumsum(vb[1:], axis=0) * DT])
            l = np.asarray(g.l)
            if isinstance(law, fp.Linear):
                w = 0.5 * phi**2
            elif isinstance(law, fp.Sinh):
                s = np.asarray(law.scale)
                w = s**2 * (np.cosh(phi / s) - 1)
            else:
                s = np.asarray(law.scale)
                w = 0.5 * phi**2 + 0.25 * phi**4 / s**2
            total += (w / l).sum(axis=1)
    return total


@settings(**SETTINGS)
@given(passive_circuits(kinds=("R", "C", "L", "D")))
def test_sources_deliver_at_least_the_stored_energy(circuit):
    # From rest, backward Euler is dissipative for monotone laws (W convex), so at every step
    # the energy the sources delivered, Σ h p_m, is at least the energy stored. (The inductor
    # fluxes of `_stored_energy` are backward Euler's running sums, so the method is named.)
    traj = fp.simulate(
        circuit,
        dt=DT,
        steps=STEPS,
        uic=True,
        method="euler",
        saveat=fp.SaveAt(currents=True),
        substeps=1,
    )
    n = circuit.n_nodes
    v = np.concatenate([np.asarray(traj.v), np.zeros((traj.v.shape[0], 1))], axis=1)
    power = np.zeros(v.shape[0])
    for k, (pa, pb) in enumerate(circuit.vsources.nodes):
        vab = v[:, pa if pa >= 0 else n] - v[:, pb if pb >= 0 else n]
        power += -vab * np.asarray(traj.i_vsrc[:, k])
    for k, (pa, pb) in enumerate(circuit.isources.nodes):
        vab = v[:, pa if pa >= 0 else n] - v[:, pb if pb >= 0 else n]
        power += -vab * np.asarray(traj.i_isrc[:, k])
    delivered = np.concatenate([[0.0], np.cumsum(power[1:]) * DT])
    stored = _stored_energy(circuit, traj)
    assert np.all(delivered >= stored - 1e-12 * max(stored.max(), 1e-30))


@settings(**SETTINGS)
@given(passive_circuits(kinds=("R", "C", "L", "M", "P"), linear=True), st.floats(0.3, 3.0))
def test_superposition_in_linear_circuits(circuit, scale):
    steps = STEPS
    t = np.arange(steps + 1) * DT
    u1 = jnp.asarray(np.sin(2e4 * t))
    u2 = jnp.asarray(scale * np.cos(7e3 * t) * (t > 2e-4))
    i1 = jnp.asarray(1e-3 * np.sin(5e3 * t))
    zero_i = jnp.zeros(steps + 1)

    def run(u, i):
        return fp.simulate(
            circuit, dt=DT, steps=steps, uic=True, inputs={"V1": u, "I1": i}, substeps=1
        ).v

    both = run(u1 + u2, i1)
    parts = run(u1, zero_i) + run(u2, zero_i) + run(jnp.zeros(steps + 1), i1)
    scale_v = float(jnp.max(jnp.abs(both)))
    assert float(jnp.max(jnp.abs(both - parts))) <= 1e-10 * scale_v
