"""Rematerialised time scan: ``simulate(..., checkpoint=k)`` and ``LearningProblem(checkpoint=k)``.

Checkpointing must not change any forward value (the same step function runs on the same
carries, so the trajectories are compared bitwise), must give the same gradient up to the
order in which reverse mode sums the per-step parameter cotangents, and must make the compiled
temporary memory of `jax.grad` much smaller at a size where the per-step residuals dominate.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fracprop as fp

SPEC = fp.NetworkSpec(n_in=2, hidden=(4,), n_out=1)
STEPS = 50
# SOE with a short near field, so that the far-field modes are part of the carry at N = 50.
HISTORY = fp.SOE(near=8)


def problem_at(steps, *, spec=SPEC, history=HISTORY, checkpoint=None):
    circuit, inputs, outputs = fp.layered_network(spec)
    dt = 10.0 / steps
    problem = fp.LearningProblem(
        circuit,
        inputs=inputs,
        outputs=outputs,
        dt=dt,
        steps=steps,
        history=history,
        checkpoint=checkpoint,
    )
    ts = np.arange(steps + 1) * dt
    u = jnp.asarray(fp.multisine(len(inputs), ts, 1.0, seed=0))
    targets = 0.3 * jnp.asarray(fp.multisine(len(outputs), ts, 1.0, seed=1))
    return problem, u, targets


def rel_l2(a, b) -> float:
    a = jnp.concatenate([x.ravel() for x in jax.tree.leaves(a)])
    b = jnp.concatenate([x.ravel() for x in jax.tree.leaves(b)])
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("k", [1, 7, STEPS, STEPS + 13])
def test_trajectory_bitwise_equal(k):
    """k = 7 does not divide N = 50 (7 segments + a remainder of 1); k = 1 is one step per
    segment; k ≥ N is the single scan."""
    problem, u, _ = problem_at(STEPS)
    params = problem.params()
    kw = dict(saveat=fp.SaveAt(currents=True, conductances=True))
    ref = problem.simulate(params, u, checkpoint=None, **kw)
    got = problem.simulate(params, u, checkpoint=k, **kw)
    assert ref.ok and got.ok
    for name in ("v", "i_vsrc", "i_branch", "g_branch", "newton_iterations"):
        np.testing.assert_array_equal(
            np.asarray(getattr(got, name)), np.asarray(getattr(ref, name))
        )


def test_gradient_matches():
    """`jax.grad` of the loss with checkpoint=7 (not a divisor of 50) against no checkpoint
    (`Autodiff` is this `jax.grad` of `problem.loss`).

    Tolerance 1e-12 relative (float64): the recomputed forward values are the same; only the
    order in which the reverse scans sum the parameter cotangents differs (per segment, then
    over segments), a reassociation of ≤ 50 terms, i.e. a few ulps (~1e-15).
    """
    plain, u, t = problem_at(STEPS)
    ckpt = plain.replace(checkpoint=7)
    assert ckpt.checkpoint == 7 and plain.checkpoint is None
    assert ckpt.replace(steps=STEPS).checkpoint == 7  # kept by replace
    params = plain.params()
    g_ref = jax.jit(jax.grad(plain.loss))(params, u, t)
    g_ckpt = jax.jit(jax.grad(ckpt.loss))(params, u, t)
    assert rel_l2(g_ckpt, g_ref) < 1e-12
    # The online loss (no stored trajectory) under checkpointing: the same J and gradient up
    # to the order of the time sum (sequential in the scan vs. XLA's reduction), ≤ N ulps.
    online = jax.jit(jax.grad(lambda p: ckpt.loss(p, u, t, save_states=False)))(params)
    assert rel_l2(online, g_ref) < 1e-12
    j_online = ckpt.loss(params, u, t, save_states=False)
    j_ref = plain.loss(params, u, t)
    assert abs(float(j_online - j_ref)) <= 1e-13 * abs(float(j_ref))


def test_gradient_temp_memory_smaller():
    """Compiled temporary memory of `jax.grad` at N = 2048 on a 2-8-1 network with SOE.

    Without checkpointing reverse mode keeps every step's residuals, N·R. With k = 128 it keeps
    16 segment-boundary states S plus one segment's residuals, (N/k)·S + k·R. Measured (jax
    0.10.2, CPU, float64): 4.29 MB → 1.11 MB, ratio 0.26 (fitted over k: R ≈ 2.0 kB per step,
    S ≈ 29 kB per boundary, ≈ 0.4 MB besides). The bound 0.33 leaves ~25% for another XLA
    version and fails if the outer scan stored every step's residuals (ratio ≈ 1) or if the
    boundaries stored the history backend's constant weights too (measured 0.37).
    """
    spec = fp.NetworkSpec(n_in=2, hidden=(8,), n_out=1)
    steps = 2048
    plain, u, t = problem_at(steps, spec=spec, history=fp.SOE())
    params = plain.params()

    def temp(problem):
        fn = jax.jit(jax.grad(problem.loss))
        return fn.lower(params, u, t).compile().memory_analysis().temp_size_in_bytes

    without = temp(plain)
    with_ckpt = temp(plain.replace(checkpoint=128))
    ratio = with_ckpt / without
    assert ratio < 0.33, (
        f"temp {without / 1e6:.2f} MB -> {with_ckpt / 1e6:.2f} MB, ratio {ratio:.3f}"
    )


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_checkpoint_raises(bad):
    problem, u, _ = problem_at(8)
    with pytest.raises(ValueError, match=r"checkpoint=.*positive integer"):
        fp.simulate(problem.circuit, dt=0.1, steps=8, checkpoint=bad, substeps=1)
    with pytest.raises(ValueError, match=r"checkpoint=.*positive integer"):
        problem.replace(checkpoint=bad)


def test_online_loss_rejects_order():
    problem, u, t = problem_at(8)
    with pytest.raises(ValueError, match="order=0 only"):
        problem.loss(problem.params(), u, t, 0.5, save_states=False)
