"""One-GPU run: batched forward pass and checkpointed, microbatched gradient at scale.

Case: `fracprop.BENCHMARK_NETWORK` (16 sampled inputs, 64 tanh fractional-memristor neurons
α = ½, 4 outputs, 1280 trainable synapses, ωτ ≈ 1, horizon 20 τ), SOE history (tol 1e-12,
L = 128), **float32** with ``jax_default_matmul_precision = "highest"``, batch B = 4096 lanes,
N = 65536 steps. Every lane has its own multi-sine inputs and targets (3 tones each, random
amplitudes and phases from the lane index), generated inside the jitted function, so that only
one microbatch's inputs (20·(N+1) floats per lane) exist at a time.

- **Forward**: the loss J of every lane, summed during the run by the problem's online
  accumulator (`LearningProblem.loss(..., save_states=False)`): no trajectory is stored (B·N·nodes
  floats would be 4096·65536·100·4 B ≈ 107 GB). Lanes run as `jax.vmap` over microbatches of
  ``--microbatch`` lanes, one after the other (`lax.map`), like the gradient.
- **Gradient**: `jax.grad` of the batch-mean loss with the problem's ``checkpoint=k``
  (rematerialised time scan, `simulate`'s ``checkpoint``), accumulated over microbatches by
  `lax.scan` (the loss value is returned too).

Reported: forward and gradient seconds (compile timed separately; min and median of
``--repeats`` runs), their ratio, synapse-steps/s = 1280·B·N / time for both, the device,
the compiled temporary memory of both programs, and the device's peak memory
(`memory_stats()["peak_bytes_in_use"]`, GPU only).

**Checks before timing**, at B = 8, N = 256 in the same run: (a) the checkpointed,
microbatched gradient (k = 16, microbatch 4) equals the plain `jax.grad` of the same
batch-mean loss (no checkpoint, the whole batch in one `vmap`) to 1e-5 relative L2 in float32
(≈ 170 ulps): the forward values are the same, only summation orders differ (reverse-scan
cotangent sums per segment, microbatch sums), and on a GPU the recomputed segments may be
fused differently from the first forward pass (measured on CPU: 2.6e-7); (b) the float32
loss agrees with a float64 run of the same lanes (inputs made in float64, cast to float32) to
1e-5 relative, the float32 Newton tolerance (rtol = 1e-5) per step (measured on CPU: 5.2e-8).

**Memory** (estimates; ``--estimate-memory`` recomputes them on the current device). XLA's
compiled temporary memory of the gradient of one microbatch of m lanes was fitted, over six
compiles at N ∈ {1024, 2048, 4096}, k ∈ {32, 64, 128}, m ∈ {2, 4}, to
``temp = m·(S·N/k + R·k + I·N + c) + c0`` (S: the scan state stored per segment boundary;
R: one step's residuals; I: per-step inputs and targets, 20 floats, and their copies). On the
2-core CPU (jax 0.10.2, float32, 2026-11-23): S = 117 kB, R = 46.8 kB, I = 101 B,
c = 0.34 MB, c0 = 0.2 MB, largest misfit 0.1%. Extrapolated to N = 65536 this is 45.8 MB per
lane with k = 512 (the optimum √(N·S/R) ≈ 404 gives 44.8 MB), so the defaults
``--checkpoint 512 --microbatch 1024`` need ≈ 43.7 GiB (microbatch 512: 21.9 GiB; 2048:
87 GiB, too much). Without checkpointing one lane would need N·R ≈ 3.1 GB, so no microbatch
of useful size would fit. The forward pass needs ≈ 5.6 MB per lane at N = 65536 (compiled
at N = 2048, 4096 and m = 2, 4: 0.63 MB per lane at N = 4096, growing by 81 B per step, the
lane's inputs and targets), ≈ 5.7 GB per microbatch of 1024. The GPU compiler's buffer
assignment can differ from the CPU's, and cuSOLVER needs workspace; the margin to ~70 GiB is
for that, and the run prints the compiled temporary memory (``grad_temp_GiB``) and the
device's peak (``peak_GiB``) it actually used.

No GPU was available when this script was written; it has only run with ``--quick`` on CPU.

    python benchmarks/gpu.py                     # on a GPU: B = 4096, N = 65536
    python benchmarks/gpu.py --quick             # B = 8, N = 256, works on CPU (< 60 s)
    python benchmarks/gpu.py --estimate-memory   # the compile-only memory fit (any device)
    python benchmarks/gpu.py --batch 1024 --steps 16384 --microbatch 256 --checkpoint 128

Ends with one line of key=value pairs: fwd_s, grad_s, grad_over_fwd, fwd_synapse_steps_per_s,
grad_synapse_steps_per_s, device, and the checks' measured deviations.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # for the float64 reference of check (b) only
jax.config.update("jax_default_matmul_precision", "highest")

import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
from _common import metadata, summary_line, warm_times, write_results  # noqa: E402

import fracprop as fp  # noqa: E402

HORIZON = 20.0  # in node time constants τ = 1, as in gradients.py
CHECK = dict(batch=8, steps=256, microbatch=4, checkpoint=16)
CHECK_GRAD_RTOL = 1e-5
CHECK_F64_RTOL = 1e-5


def make_problem(steps, checkpoint=None, spec=None):
    circuit, inputs, outputs = fp.layered_network(spec or fp.BENCHMARK_NETWORK)
    return fp.LearningProblem(
        circuit,
        inputs=inputs,
        outputs=outputs,
        dt=HORIZON / steps,
        steps=steps,
        history=fp.SOE(),
        checkpoint=checkpoint,
    )


def lane_signals(lane, n, steps, dt, dtype, salt, tones=3):
    """``n`` multi-sine signals of one lane, shape ``(n, steps + 1)`` (amplitude ≲ 1)."""
    ka, kp = jr.split(jr.fold_in(jr.key(salt), lane))
    amp = jr.uniform(ka, (tones, n, 1), dtype, 0.2, 1.0) / tones
    phase = jr.uniform(kp, (tones, n, 1), dtype, 0.0, 2 * np.pi)
    ts = jnp.arange(steps + 1, dtype=dtype) * jnp.asarray(dt, dtype)
    # A Python sum over the tones: no (tones, n, steps + 1) intermediate.
    return sum(amp[m] * jnp.sin((1.0 + 0.37 * m) * ts + phase[m]) for m in range(tones))


def lane_data(problem, lanes, dtype):
    """Inputs ``(m, 16, N+1)`` and targets ``(m, 4, N+1)`` of the given lanes."""
    steps, dt = problem.steps, problem.dt
    n_in, n_out = len(problem.inputs), len(problem.outputs)
    u = jax.vmap(lambda b: lane_signals(b, n_in, steps, dt, dtype, 0))(lanes)
    t = jax.vmap(lambda b: 0.3 * lane_signals(b, n_out, steps, dt, dtype, 1))(lanes)
    return u, t


def make_jobs(problem, batch, microbatch, dtype):
    """``forward(params) -> loss`` and ``grad(params) -> (loss, grads)`` of the batch mean."""
    chunks = batch // microbatch

    def chunk_loss(params, c):
        """Σ over the lanes of microbatch ``c`` of J_b / B."""
        lanes = c * microbatch + jnp.arange(microbatch)
        u, t = lane_data(problem, lanes, dtype)
        mean = problem.loss(params, u, t, save_states=False, dtype=dtype)
        return mean * (microbatch / batch)

    def forward(params):
        return jnp.sum(jax.lax.map(lambda c: chunk_loss(params, c), jnp.arange(chunks)))

    def grad(params):
        def body(acc, c):
            j, g = jax.value_and_grad(chunk_loss)(params, c)
            return (acc[0] + j, jax.tree.map(jnp.add, acc[1], g)), None

        zero = (jnp.zeros((), dtype), jax.tree.map(jnp.zeros_like, params))
        (j, g), _ = jax.lax.scan(body, zero, jnp.arange(chunks))
        return j, g

    return forward, grad


def cast(tree, dtype):
    return jax.tree.map(lambda a: a.astype(dtype), tree)


def flat(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def rel(a, b) -> float:
    a, b = flat(a).astype(jnp.float64), flat(b).astype(jnp.float64)
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def checks(spec, compiled_grad=None) -> dict:
    """(a) checkpointed + microbatched gradient = plain jax.grad; (b) float32 vs float64 loss.

    ``compiled_grad``: the timed gradient job when it has the check's sizes (``--quick``),
    so that it is not compiled twice.
    """
    f32 = jnp.float32
    b, n, m, k = CHECK["batch"], CHECK["steps"], CHECK["microbatch"], CHECK["checkpoint"]
    plain = make_problem(n, spec=spec)
    ckpt = plain.replace(checkpoint=k)
    p32 = cast(plain.params(), f32)
    _, grad = make_jobs(ckpt, b, m, f32)
    j_ckpt, g_ckpt = (compiled_grad or jax.jit(grad))(p32)
    u, t = lane_data(plain, jnp.arange(b), f32)
    j_plain, g_plain = jax.jit(
        jax.value_and_grad(lambda p: plain.loss(p, u, t, save_states=False, dtype=f32))
    )(p32)
    grad_rel = rel(g_ckpt, g_plain)
    loss_rel = abs(float(j_ckpt) - float(j_plain)) / abs(float(j_plain))
    # (b): the same lanes in float64, and their float64 data cast to float32.
    u64, t64 = lane_data(plain, jnp.arange(b), jnp.float64)
    j64 = jax.jit(lambda p: plain.loss(p, u64, t64, save_states=False, dtype=jnp.float64))(
        plain.params()
    )
    j32 = jax.jit(
        lambda p: plain.loss(p, u64.astype(f32), t64.astype(f32), save_states=False, dtype=f32)
    )(p32)
    f64_rel = abs(float(j32) - float(j64)) / abs(float(j64))
    out = {"ckpt_grad_rel": grad_rel, "ckpt_loss_rel": loss_rel, "f32_vs_f64_rel": f64_rel}
    print(
        f"checks (B={b}, N={n}): checkpointed+microbatched grad vs plain {grad_rel:.2e} "
        f"(loss {loss_rel:.2e}); float32 vs float64 loss {f64_rel:.2e}",
        file=sys.stderr,
    )
    if not (grad_rel <= CHECK_GRAD_RTOL and loss_rel <= CHECK_GRAD_RTOL):
        raise SystemExit(f"FAILED: checkpointed gradient deviates by {grad_rel:.2e}")
    if not f64_rel <= CHECK_F64_RTOL:
        raise SystemExit(f"FAILED: float32 loss deviates from float64 by {f64_rel:.2e}")
    return out


def compile_job(fn, args):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def timed(compiled, args, repeats):
    out, times = warm_times(compiled, args, repeats)
    temp = compiled.memory_analysis().temp_size_in_bytes
    return out, min(times), float(np.median(times)), temp


def estimate_memory(spec, steps, batch, microbatch, checkpoint) -> dict:
    """Fit ``temp = m·(S·N/k + R·k + I·N + c) + c0`` over small compiles; extrapolate."""
    f32 = jnp.float32
    grid = [
        (1024, 32, 2),
        (2048, 32, 2),
        (2048, 128, 2),
        (4096, 64, 2),
        (2048, 32, 4),
        (4096, 128, 4),
    ]
    rows, design, temps = [], [], []
    for n, k, m in grid:
        problem = make_problem(n, checkpoint=k, spec=spec)
        _, grad = make_jobs(problem, m, m, f32)
        p32 = cast(problem.params(), f32)
        temp = jax.jit(grad).lower(p32).compile().memory_analysis().temp_size_in_bytes
        rows.append(
            {"job": "memory_fit", "N": n, "checkpoint": k, "microbatch": m, "temp_bytes": temp}
        )
        design.append([m * n / k, m * k, m * n, m, 1.0])
        temps.append(temp)
        print(f"memory fit: N={n} k={k} m={m} temp {temp / 2**20:.1f} MiB", file=sys.stderr)
    coef, *_ = np.linalg.lstsq(np.asarray(design), np.asarray(temps, float), rcond=None)
    s, r, i, c, c0 = coef
    fit_err = float(np.max(np.abs(np.asarray(design) @ coef - temps) / np.asarray(temps)))
    k_best = math.sqrt(max(s, 1.0) * steps / max(r, 1.0))
    predict = microbatch * (s * steps / checkpoint + r * checkpoint + i * steps + c) + c0
    # The microbatch scan keeps nothing per microbatch beyond the gradient accumulator.
    print(
        f"memory fit: S={s / 1e3:.1f} kB/boundary R={r / 1e3:.1f} kB/step I={i:.1f} B/step "
        f"c={c / 1e6:.2f} MB/lane c0={c0 / 1e6:.1f} MB (max misfit {fit_err:.1%}); "
        f"best k ≈ {k_best:.0f}; N={steps}, k={checkpoint}, m={microbatch}: "
        f"{predict / 2**30:.1f} GiB for the gradient of one microbatch",
        file=sys.stderr,
    )
    summary = {
        "S_bytes": float(s),
        "R_bytes": float(r),
        "I_bytes": float(i),
        "lane_bytes": float(c),
        "fixed_bytes": float(c0),
        "fit_misfit": fit_err,
        "k_best": k_best,
        "est_grad_GiB": predict / 2**30,
    }
    return {"rows": rows, "summary": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B=8, N=256; runs on CPU in < 60 s")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=65536)
    parser.add_argument("--microbatch", type=int, default=1024)
    parser.add_argument("--checkpoint", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--estimate-memory",
        action="store_true",
        help="only fit and print the gradient's memory (compiles, no timing)",
    )
    parser.add_argument("--out", default="results/gpu")
    args = parser.parse_args(argv)
    spec = fp.BENCHMARK_NETWORK
    if args.quick:
        # The check's own sizes, so that the checks reuse the timed gradient job.
        args.batch, args.steps = CHECK["batch"], CHECK["steps"]
        args.microbatch, args.checkpoint = CHECK["microbatch"], CHECK["checkpoint"]
    device = jax.devices()[0]

    if args.estimate_memory:
        est = estimate_memory(spec, args.steps, args.batch, args.microbatch, args.checkpoint)
        meta = metadata(dtype="float32", history="SOE(tol=1e-12)", mode="estimate-memory")
        write_results(args.out, "gpu_memory", est["rows"], meta, est["summary"])
        print(summary_line(est["summary"]))
        return 0
    if device.platform != "gpu" and not args.quick:
        print(
            f"No GPU is visible to JAX (devices: {jax.devices()}); the full run "
            f"(B={args.batch}, N={args.steps}) is meant for one. Install jax[cuda12] on a "
            "machine with an NVIDIA GPU and run `python benchmarks/gpu.py`; "
            "`python benchmarks/gpu.py --quick` runs a tiny case on CPU.",
        )
        return 0
    if args.batch % args.microbatch:
        parser.error(f"--batch {args.batch} must be a multiple of --microbatch {args.microbatch}")

    f32 = jnp.float32
    problem = make_problem(args.steps, checkpoint=args.checkpoint, spec=spec)
    params = cast(problem.params(), f32)
    forward, grad = make_jobs(problem, args.batch, args.microbatch, f32)
    fwd_c, fwd_compile = compile_job(forward, (params,))
    grad_c, grad_compile = compile_job(grad, (params,))
    sizes = (args.batch, args.steps, args.microbatch, args.checkpoint)
    at_check_sizes = sizes == (
        CHECK["batch"],
        CHECK["steps"],
        CHECK["microbatch"],
        CHECK["checkpoint"],
    )
    check = checks(spec, grad_c if at_check_sizes else None)

    j_fwd, fwd_min, fwd_med, fwd_temp = timed(fwd_c, (params,), args.repeats)
    print(f"forward  min {fwd_min:.3f} s (compile {fwd_compile:.1f} s)", file=sys.stderr)
    (j_grad, g), grad_min, grad_med, grad_temp = timed(grad_c, (params,), args.repeats)
    print(f"gradient min {grad_min:.3f} s (compile {grad_compile:.1f} s)", file=sys.stderr)
    finite = bool(jnp.isfinite(j_fwd)) and bool(jnp.all(jnp.isfinite(flat(g))))
    same_loss = abs(float(j_grad) - float(j_fwd)) / abs(float(j_fwd))
    if not finite or not same_loss <= CHECK_GRAD_RTOL:
        print(
            f"FAILED: finite={finite}, gradient-job loss vs forward {same_loss:.2e}",
            file=sys.stderr,
        )
        return 1
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")

    synapses = len(problem.trainable)
    work = synapses * args.batch * args.steps
    rows = [
        {
            "job": "forward",
            "B": args.batch,
            "N": args.steps,
            "microbatch": args.microbatch,
            "checkpoint": "",
            "compile_s": fwd_compile,
            "min_s": fwd_min,
            "median_s": fwd_med,
            "synapse_steps_per_s": work / fwd_min,
            "temp_bytes": fwd_temp,
        },
        {
            "job": "grad",
            "B": args.batch,
            "N": args.steps,
            "microbatch": args.microbatch,
            "checkpoint": args.checkpoint,
            "compile_s": grad_compile,
            "min_s": grad_min,
            "median_s": grad_med,
            "synapse_steps_per_s": work / grad_min,
            "temp_bytes": grad_temp,
        },
    ]
    summary = {
        "fwd_s": fwd_min,
        "grad_s": grad_min,
        "grad_over_fwd": grad_min / fwd_min,
        "fwd_synapse_steps_per_s": work / fwd_min,
        "grad_synapse_steps_per_s": work / grad_min,
        "fwd_median_s": fwd_med,
        "grad_median_s": grad_med,
        "fwd_compile_s": fwd_compile,
        "grad_compile_s": grad_compile,
        "grad_temp_GiB": grad_temp / 2**30,
        "peak_GiB": "n/a" if peak is None else peak / 2**30,
        **check,
        "B": args.batch,
        "N": args.steps,
        "microbatch": args.microbatch,
        "checkpoint": args.checkpoint,
        "synapses": synapses,
        "quick": int(args.quick),
        "device": device.device_kind.replace(" ", "_"),
    }
    meta = metadata(
        dtype="float32", history="SOE(tol=1e-12)", matmul_precision="highest", memory_stats=stats
    )
    write_results(args.out, "gpu", rows, meta, summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
