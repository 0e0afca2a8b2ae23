"""Shared plumbing of the benchmark scripts: run metadata, result files, the summary line, and
the fixed-grid scheme the throughput benchmarks time."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax

import fracprop as fp

#: The fixed-grid scheme of Kendall (2021) that the throughput, history-backend and peer
#: benchmarks time: Grünwald–Letnikov convolutions, backward-Euler capacitors and inductors,
#: no starting weights, no time-error control. (`simulate`'s defaults are more accurate and do
#: more work; `accuracy.py` measures them.)
GL_FIXED = dict(kernel=fp.GL(), method="euler", starting=False, substeps=1)


def warm_times(compiled, args, repeats: int):
    """Run ``compiled(*args)`` once (warm-up), then time ``repeats`` more calls.

    **Returns** ``(output of the warm-up call, list of wall times in seconds)``; every call
    blocks until its result is ready.
    """
    out = jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return out, times


def metadata(**extra) -> dict:
    """Device, versions, date and command line of this run (plus ``extra``)."""
    meta = {
        "device": str(jax.devices()[0]),
        "device_kind": jax.devices()[0].device_kind,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "git_commit": git_commit(),
        "jax_version": jax.__version__,
        "fracprop_version": fp.__version__,
        "x64": bool(jax.config.jax_enable_x64),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    meta.update(extra)
    return meta


def write_results(out_dir, name: str, rows: list[dict], meta: dict, summary: dict | None = None):
    """Write ``<name>.csv`` (one row per measurement) and ``<name>.json`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / f"{name}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    payload = {"meta": meta, "rows": rows}
    if summary is not None:
        payload["summary"] = summary
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    return out


def summary_line(summary: dict) -> str:
    """One line of ``key=value`` pairs (floats to 4 significant digits)."""
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()
    )


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where available)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """Short hash of the checkout the benchmark ran from, if it is a git checkout.

    ``-dirty`` is appended when tracked files differ from that commit, so a figure measured
    on uncommitted code is marked as such.
    """
    here = Path(__file__).resolve().parent

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if not commit:
        return None
    return commit + ("-dirty" if dirty else "")
