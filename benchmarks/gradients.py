"""Gradient cost on the benchmark network: forward pass, jax.grad, EP and Replay.

`fracprop.BENCHMARK_NETWORK` (16 inputs, 64 tanh fractional-memristor neurons, 4 outputs, 1280
trainable synapses, ωτ ≈ 1), SOE history (tol 1e-12), float64. The baseline of every ratio is
the forward pass (simulate + loss) in the same run; the jobs are timed in interleaved rounds
(forward, grad, grad_ckpt, EP, Replay, forward, ...), so a drift in the machine's load biases
no ratio. ``grad_ckpt`` is `jax.grad` with the time scan rematerialised in segments of
``CHECKPOINT`` = 64 steps (`LearningProblem(checkpoint=64)`); before timing, it must equal
plain `jax.grad` to 1e-12 and Replay must equal `jax.grad` to 1e-9. Also reports the
compiled temporary memory (`memory_analysis().temp_size_in_bytes`, which excludes the input
arrays) of each jitted function at several N and its log–log slope in N.

    python benchmarks/gradients.py [--quick] [--out DIR]

Ends with one line of key=value pairs: grad_over_fwd, ep_over_fwd, replay_over_fwd (min wall
time), the same ratios of min process CPU time (``*_cpu``: less sensitive to other load on a
shared machine, where wall time includes waiting for a core), grad_mem_slope, ep_mem_slope,
replay_mem_slope, grad_ckpt_over_fwd and grad_ckpt_mem_ratio (its temporary memory over
plain jax.grad's at the timing N).
"""

from __future__ import annotations

import argparse
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import metadata, summary_line, write_results  # noqa: E402

import fracprop as fp  # noqa: E402


def problem_at(steps, horizon=20.0, spec=None):
    spec = spec or fp.BENCHMARK_NETWORK
    circuit, inputs, outputs = fp.layered_network(spec)
    dt = horizon / steps
    problem = fp.LearningProblem(
        circuit, inputs=inputs, outputs=outputs, dt=dt, steps=steps, history=fp.SOE()
    )
    ts = np.arange(steps + 1) * dt
    u = jnp.asarray(fp.multisine(len(inputs), ts, 1.0, seed=0))
    targets = 0.3 * jnp.asarray(fp.multisine(len(outputs), ts, 1.0, seed=1))
    return problem, u, targets


#: Steps per rematerialised segment of the ``grad_ckpt`` job (`LearningProblem(checkpoint=k)`).
CHECKPOINT = 64


def jobs(problem):
    rematerialised = problem.replace(checkpoint=CHECKPOINT)
    return {
        "forward": lambda p, u, t: problem.loss(p, u, t),
        "grad": lambda p, u, t: jax.grad(problem.loss)(p, u, t),
        "grad_ckpt": lambda p, u, t: jax.grad(rematerialised.loss)(p, u, t),
        "ep": lambda p, u, t: fp.EP(beta=1e-3)(problem, p, u, t),
        "replay": lambda p, u, t: fp.Replay()(problem, p, u, t),
    }


def compile_all(fns, args):
    """Compile every job (timed separately) and run each once, so no later call compiles."""
    compiled, compile_s = {}, {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(*args).compile()
        compile_s[name] = time.perf_counter() - t0
        jax.block_until_ready(compiled[name](*args))
    return compiled, compile_s


def timed_interleaved(compiled, args, repeats):
    """Wall and process-CPU times of every job, ``repeats`` rounds of one call per job.

    The jobs alternate within each round, so a slow drift of the machine's load (another
    process, frequency scaling) reaches every job alike instead of biasing whichever job
    happened to run during it; the ratios of the minima are then comparable.
    """
    wall = {name: [] for name in compiled}
    cpu = {name: [] for name in compiled}
    for _ in range(repeats):
        for name, fn in compiled.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, < 60 s on 2 cores")
    parser.add_argument("--out", default="results/gradients")
    args = parser.parse_args(argv)
    if args.quick:
        spec = fp.NetworkSpec(n_in=4, hidden=(16,), n_out=2)
        time_n, mem_sizes, repeats = 256, [128, 256], 3
    else:
        spec = fp.BENCHMARK_NETWORK
        time_n, mem_sizes, repeats = 2048, [512, 1024, 2048, 4096], 9

    # Correctness before timing: Replay equals jax.grad on this network.
    problem, u, t = problem_at(time_n, spec=spec)
    params = problem.params()
    g_ref = jax.jit(lambda p: jax.grad(problem.loss)(p, u, t))(params)
    g_rep = jax.jit(lambda p: fp.Replay()(problem, p, u, t))(params)
    rel = fp.validation.compare(g_rep, g_ref)["overall"]["rel_l2"]
    if not rel <= 1e-9:
        print(f"FAILED: Replay deviates from jax.grad by {rel:.2e}", file=sys.stderr)
        return 1

    g_ckpt = jax.jit(lambda p: jax.grad(problem.replace(checkpoint=CHECKPOINT).loss)(p, u, t))(
        params
    )
    rel_ckpt = fp.validation.compare(g_ckpt, g_ref)["overall"]["rel_l2"]
    if not rel_ckpt <= 1e-12:  # the same sums in the same order: round-off only
        print(f"FAILED: checkpointed jax.grad deviates by {rel_ckpt:.2e}", file=sys.stderr)
        return 1

    rows = []
    times, cpu_times = {}, {}
    mem = {name: {} for name in jobs(problem)}
    compiled, compile_s = compile_all(jobs(problem), (params, u, t))
    wall, cpu = timed_interleaved(compiled, (params, u, t), repeats)
    for name in compiled:
        times[name], cpu_times[name] = min(wall[name]), min(cpu[name])
        mem[name][time_n] = compiled[name].memory_analysis().temp_size_in_bytes
        rows.append(
            {
                "job": name,
                "N": time_n,
                "compile_s": compile_s[name],
                "min_s": times[name],
                "median_s": float(np.median(wall[name])),
                "min_cpu_s": cpu_times[name],
                "temp_bytes": mem[name][time_n],
            }
        )
        print(
            f"{name:8s} N={time_n} min {times[name]:.3f} s (compile {compile_s[name]:.1f} s)",
            file=sys.stderr,
        )
    for n in mem_sizes:
        if n == time_n:
            continue
        prob_n, u_n, t_n = problem_at(n, spec=spec)
        p_n = prob_n.params()
        for name, fn in jobs(prob_n).items():
            compiled = jax.jit(fn).lower(p_n, u_n, t_n).compile()
            temp = compiled.memory_analysis().temp_size_in_bytes
            mem[name][n] = temp
            rows.append({"job": name, "N": n, "temp_bytes": temp})
            print(f"{name:8s} N={n} temp {temp / 1e6:.2f} MB", file=sys.stderr)

    def slope(by_n):
        ns = sorted(by_n)
        ys = [max(by_n[k], 1) for k in ns]
        return float(np.polyfit(np.log(ns), np.log(ys), 1)[0])

    summary = {
        "grad_over_fwd": times["grad"] / times["forward"],
        "ep_over_fwd": times["ep"] / times["forward"],
        "replay_over_fwd": times["replay"] / times["forward"],
        "grad_ckpt_over_fwd": times["grad_ckpt"] / times["forward"],
        "grad_ckpt_mem_ratio": mem["grad_ckpt"][time_n] / mem["grad"][time_n],
        "grad_over_fwd_cpu": cpu_times["grad"] / cpu_times["forward"],
        "ep_over_fwd_cpu": cpu_times["ep"] / cpu_times["forward"],
        "replay_over_fwd_cpu": cpu_times["replay"] / cpu_times["forward"],
        "grad_mem_slope": slope(mem["grad"]),
        "ep_mem_slope": slope(mem["ep"]),
        "replay_mem_slope": slope(mem["replay"]),
        "fwd_mem_slope": slope(mem["forward"]),
        "replay_vs_grad_rel": rel,
        "grad_ckpt_vs_grad_rel": rel_ckpt,
        "checkpoint": CHECKPOINT,
        "N": time_n,
        "synapses": sum(1 for _ in problem.trainable),
        "quick": int(args.quick),
    }
    meta = metadata(dtype="float64", history="SOE(tol=1e-12)")
    write_results(args.out, "gradients", rows, meta, summary)
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
