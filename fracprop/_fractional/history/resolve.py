"""Choosing a history backend by name or by run length."""

from __future__ import annotations

import numpy as np

from ..kernels import AbstractKernel
from .base import AbstractHistory
from .blocked import HLS, Dense
from .exact import Exact
from .soe import SOE

#: Above this many steps, ``history="auto"`` uses `SOE` (`GL`, `FBDF2`) or `HLS` (other kernels).
AUTO_SOE_STEPS = 1024


#: Every history backend by the name that ``history=`` accepts (with ``"auto"``).
BACKENDS: dict[str, type[AbstractHistory]] = {
    "exact": Exact,
    "dense": Dense,
    "hls": HLS,
    "soe": SOE,
}

HISTORY_CHOICES = ("auto", *BACKENDS)


def _has_gl_taps(kernel: AbstractKernel) -> bool:
    """Whether ``kernel`` defines `AbstractKernel.gl_taps`, which `SOE` needs."""
    try:
        kernel.gl_taps(np.zeros(()))
    except NotImplementedError:
        return False
    return True


def resolve_history(
    history: AbstractHistory | str, kernel: AbstractKernel, steps: int
) -> AbstractHistory:
    """The backend named by a ``history=`` argument (an instance is returned unchanged).

    ``"exact"``, ``"dense"``, ``"hls"`` and ``"soe"`` give `Exact()`, `Dense()`, `HLS()` and
    `SOE()` with default settings. ``"auto"`` gives `Exact()` up to ``AUTO_SOE_STEPS`` (1024)
    steps; beyond, `SOE()` for a kernel with `AbstractKernel.gl_taps` (`GL`, `FBDF2`) and
    `HLS()` for any other kernel (HLS is exact for any kernel). Up to 1024 steps the exact
    convolution costs at most a few times SOE's O(K + L) ≈ 235 terms per step, and its
    reverse-mode memory (O(C·N²) when the orders are differentiated) is still small. Beyond,
    SOE keeps the work per step and the gradient memory per step independent of N, at a
    relative error of about 1e-12 on the far weights; HLS keeps the work per step O(log² N)
    and conductance gradients O(C·N) in all. Measured with ``benchmarks/history.py`` on the
    benchmark network (128 channels of 2 orders, 2-core CPU): Exact / SOE /
    HLS 0.43 / 0.33 / 0.25 s at N = 1024, 0.89 / 0.47 / 0.56 s at N = 2048, 2.0 / 0.89 /
    0.92 s at N = 4096, 30 / 3.9 / 3.1 s at N = 16384.

    **Raises** `TypeError` if ``history`` is neither a string nor an `AbstractHistory`;
    `ValueError` for an unknown name.
    """
    if isinstance(history, AbstractHistory):
        return history
    choices = ", ".join(repr(c) for c in HISTORY_CHOICES)
    if not isinstance(history, str):
        raise TypeError(
            f"history={history!r} must be one of {choices} or an AbstractHistory instance "
            f"(Exact(), Dense(), HLS(), SOE()); got {type(history).__name__}"
        )
    name = history.lower()
    if name == "auto":
        if steps <= AUTO_SOE_STEPS:
            return Exact()
        return SOE() if _has_gl_taps(kernel) else HLS()
    if name not in BACKENDS:
        raise ValueError(
            f"history={history!r} is not a history backend; choose one of {choices} "
            "or pass an AbstractHistory instance"
        )
    return BACKENDS[name]()
