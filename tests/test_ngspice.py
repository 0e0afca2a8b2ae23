"""Agreement with ngspice, an independent simulator, on integer-order netlists run unchanged.

fracprop integrates with its default method, the trapezoidal rule started by one
backward-Euler step, on the fixed TSTEP grid; ngspice uses its adaptive trapezoidal method.
Each netlist's TSTEP was chosen so that even backward Euler's first-order error is well
inside the bound: on every node, max |fracprop − ngspice| ≤ 1% of the node's
peak-to-peak swing, compared at the TSTEP grid (ngspice's points linearly interpolated).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import NETLISTS, have_ngspice, run_ngspice

import fracprop as fp

pytestmark = pytest.mark.skipif(not have_ngspice(), reason="ngspice is not installed")

CASES = [
    "rc_pulse.cir",
    "rlc_underdamped.cir",
    "halfwave_rectifier.cir",
    "rc_ladder_isource.cir",
    "diode_clamp_inductor.cir",
]


def _compare_with_ngspice(path, *, constant_nodes=()):
    netlist = fp.load_netlist(path)
    steps = int(round(netlist.tran.tstop / netlist.tran.tstep))
    traj = fp.simulate(
        netlist.circuit, dt=netlist.tran.tstep, steps=steps, uic=netlist.tran.uic, substeps=1
    )
    ref = run_ngspice(path)
    ts = np.asarray(traj.ts)
    assert ts[-1] == pytest.approx(ref["time"][-1], rel=1e-9)
    # every node has ngspice's name (subcircuit nodes too: x1.n2), so this lookup finds it
    for k, node in enumerate(traj.node_names):
        expected = np.interp(ts, ref["time"], ref[f"v({node})"])
        err = np.max(np.abs(np.asarray(traj.v[:, k]) - expected))
        swing = np.ptp(expected)
        if node in constant_nodes:  # a DC source's node: equal to ngspice's own rounding
            assert err <= 1e-9 * max(1.0, np.max(np.abs(expected))), (node, err)
            continue
        assert swing > 0, node
        assert err <= 0.01 * swing, (node, err / swing)


@pytest.mark.parametrize("name", CASES)
def test_matches_ngspice(name):
    _compare_with_ngspice(NETLISTS / name)


# Decks written with subcircuits (nested, with parameters), .param/.func expressions and
# .include/.lib files from nested folders; each is run unchanged by both simulators.
SUBCIRCUIT_CASES = {
    "sub_rc_ladder_lib.cir": (),
    "sub_lc_tank_include.cir": (),
    "sub_diode_clamp_params.cir": ("xa.xc.ref", "xb.xc.ref"),
    "sub_isource_ladder.cir": (),
}


@pytest.mark.parametrize("name", SUBCIRCUIT_CASES)
def test_subcircuit_decks_match_ngspice(name):
    _compare_with_ngspice(NETLISTS / name, constant_nodes=SUBCIRCUIT_CASES[name])


def test_operating_point_matches_ngspice():
    # The rectifier's source has a DC offset: both simulators start from the same DC point.
    path = NETLISTS / "halfwave_rectifier.cir"
    netlist = fp.load_netlist(path)
    traj = fp.simulate(netlist.circuit, dt=netlist.tran.tstep, steps=1, substeps=1)
    ref = run_ngspice(path)
    # ngspice converges its operating point to RELTOL = 1e-3 and VNTOL = 1e-6 V (defaults), so
    # its own answer is only that accurate; fracprop's converges to 1e-10 relative.
    for k, node in enumerate(traj.node_names):
        assert float(traj.v[0, k]) == pytest.approx(ref[f"v({node})"][0], rel=1e-3, abs=1e-6)


PULSE_DECK = """pulse period boundary
* V1: PW = PER = TSTOP by default, so it holds V2 at t = TSTOP; V2: a delayed 0.3 ms period
V1 a 0 PULSE(0 1 0 10u 10u)
V2 b 0 PULSE(0 2 0.1m 50u 50u 0.2m 0.3m)
R1 a 0 1k
R2 b 0 1k
.tran 10u 1m
.end
"""


def test_pulse_period_boundary_matches_ngspice(tmp_path):
    # ngspice starts a new PULSE period only once t − TD > PER; at the last point,
    # t = TSTOP = PER, the first source is still at V2 = 1 V. Each node is its source's
    # voltage, so fracprop's waveforms, evaluated at ngspice's own time points, must give
    # ngspice's node voltages (ngspice does not step to every corner of the pulse, so its
    # points are compared where they are, not interpolated onto the TSTEP grid).
    path = tmp_path / "pulse.cir"
    path.write_text(PULSE_DECK)
    netlist = fp.load_netlist(path)
    ref = run_ngspice(path)
    assert ref["time"][-1] == pytest.approx(1e-3) and ref["v(a)"][-1] == pytest.approx(1.0)
    times = jnp.asarray(ref["time"])
    for wave, node in zip(netlist.circuit.vsources.waveforms, ("a", "b"), strict=True):
        ours = np.asarray(jax.vmap(wave)(times))
        np.testing.assert_allclose(ours, ref[f"v({node})"], rtol=0, atol=1e-9)
    traj = fp.simulate(netlist.circuit, dt=netlist.tran.tstep, steps=100)
    assert float(traj.node("a")[-1]) == 1.0
