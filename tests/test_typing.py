"""The jaxtyping shapes annotated on `Trajectory` hold for real runs (checked at run time)."""

import dataclasses
import typing

import jax
import jax.numpy as jnp
import jaxtyping
import pytest
from helpers import every_element_circuit

import fracprop as fp

_HINTS = typing.get_type_hints(fp.Trajectory)
_ARRAY_FIELDS = [
    f.name
    for f in dataclasses.fields(fp.Trajectory)
    if f.name not in ("accumulated", "result") and not f.metadata.get("static", False)
]


def _matches(value, hint) -> bool:
    options = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, type(int | None))
        else (hint,)
    )
    return any(
        (value is None) if option is type(None) else isinstance(value, option) for option in options
    )


@jaxtyping.jaxtyped(typechecker=None)
def _check(traj) -> list[str]:
    """Fields whose value does not match its annotation; one jaxtyped call, so that a named
    dimension ("times", "saved", "branches", the batch) must agree between fields."""
    return [name for name in _ARRAY_FIELDS if not _matches(getattr(traj, name), _HINTS[name])]


def _rc():
    b = fp.CircuitBuilder("rc")
    b.vsource("V1", "in", "0", fp.Sin(0.0, 1.0, 50.0))
    b.resistor("R1", "in", "out", 1e3)
    b.capacitor("C1", "out", "0", 1e-6)
    b.isource("I1", "out", "0", 1e-4)
    return b.build()


@pytest.mark.parametrize(
    "saveat",
    [fp.SaveAt(), fp.SaveAt(states=False), fp.SaveAt(currents=True, conductances=True)],
    ids=["states", "no-states", "everything"],
)
def test_trajectory_fields_match_their_shapes(saveat):
    # Time-error control (error_estimate set) needs the states; without them a fixed grid.
    substeps = None if saveat.states else 1
    traj = fp.simulate(_rc(), dt=1e-4, steps=30, saveat=saveat, substeps=substeps)
    assert _check(traj) == []


def test_batched_trajectory_matches_its_shapes():
    circuit = every_element_circuit()
    dts = jnp.asarray([1e-3, 2e-3])
    traj = jax.vmap(
        lambda dt: fp.simulate(
            circuit, dt=dt, steps=12, throw=False, saveat=fp.SaveAt(currents=True), substeps=1
        )
    )(dts)
    assert traj.v.shape[0] == 2
    assert _check(traj) == []


def test_a_field_of_the_wrong_shape_is_caught():
    traj = fp.simulate(_rc(), dt=1e-4, steps=30, saveat=fp.SaveAt(currents=True))
    # i_branch one time short of ts: the shared "times" dimension no longer agrees.
    broken = dataclasses.replace(traj, i_branch=traj.i_branch[:-1])
    assert _check(broken) == ["i_branch"]
    # An integer array where floats are declared.
    broken = dataclasses.replace(traj, v=traj.v.astype(jnp.int32))
    assert "v" in _check(broken)
