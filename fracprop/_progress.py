"""Pluggable, throttled progress meters for long scans (a host callback every k steps)."""

from __future__ import annotations

import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp


class AbstractProgress(eqx.Module):
    """Called inside the time loop with the current step and the total."""

    def update(self, n, total: int) -> None:
        raise NotImplementedError


class NoProgress(AbstractProgress):
    """No output (the default inside library calls)."""

    def update(self, n, total):
        return None


_STATE: dict = {}


def _print_bar(n, total, width=30):
    n = int(n)
    now = time.perf_counter()
    start, n0 = _STATE.setdefault("start", (now, n))
    done = int(width * n / max(total, 1))
    rate = f"  {(n - n0) / (now - start):,.0f} steps/s" if now > start and n > n0 else ""
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {n}/{total} steps{rate}")
    if n >= total:
        sys.stderr.write("\n")
        _STATE.clear()
    sys.stderr.flush()


class TextProgress(AbstractProgress):
    """A text bar on stderr, refreshed about ``updates`` times per run."""

    updates: int = eqx.field(static=True, default=50)

    def update(self, n, total):
        every = max(total // self.updates, 1)

        def show(n):
            jax.debug.callback(lambda k: _print_bar(k, total), n)

        jax.lax.cond((n % every == 0) | (n == total), show, lambda n: None, n)
        return None


__all__ = ["AbstractProgress", "NoProgress", "TextProgress", "jnp"]
