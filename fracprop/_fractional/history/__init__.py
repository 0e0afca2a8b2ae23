r"""History backends: the far part of every fractional convolution.

At step ``n`` an implicit stepper needs, for each channel ``c`` with operator order ``a_c``, the
*history sum*

.. math::  H_c[n] = \sum_{k=1}^{n} w^{(a_c)}_{k}\, x_c[n-k],

i.e. everything except the current-step term ``w_0 x_c[n]``, which goes into the Newton solve.
A backend is an explicit state machine: ``init`` builds the state from the kernel and the
channel orders, ``history`` reads ``H[n]``, and ``push`` appends ``x[n]`` once step ``n`` has
converged. `lax.scan` drives it. Values before the first push are zero.

| backend | exact? | work per step (amortised) | state (carried by the scan) |
|---|---|---|---|
| `Exact()` | to round-off | O(C·N), memory-bound dot products | O(C·N) |
| `Dense(block)` | to round-off | O(C·N) as batched matmuls, O(C·B) near field | O(C·N) |
| `HLS(leaf)` | to round-off | O(C·log² N) by FFTs, O(C·L) near field | O(C·N) |
| `SOE(tol)` | to ``tol`` (relative, on the weights) | O(C·(K + L)) | O(C·(K + L)) |

``SOE`` keeps the last ``L`` values exactly and represents the far weights ``w_j, j > L`` as a
sum of exponentials ``Σ_k c_k s_k^j``; its scan carry does not grow with N, so reverse-mode
memory grows like N (one carry per step) instead of N². ``Exact``, ``Dense`` and ``HLS`` carry
the full value buffer. Their reverse mode is O(C·N) in all when the orders are fixed (the
usual case, conductance gradients). When the orders α are differentiated, it stores the
value window at every step, O(C·N²) in all. Measured by ``benchmarks/grad_memory.py`` at
N = 512 … 2048, the log–log slopes of temporary memory are: conductances 1.00 (Exact),
0.67 (Dense), 1.00 (HLS), 0.96 (SOE); with α 1.97, 1.96, 1.98 and 1.00 (SOE).

**Channels that share an order share its weights.** ``init`` takes the distinct orders
(shape ``(U,)``) and, optionally, ``classes``: for each of the ``C`` channels the index of its
order. The weights (and Hankel rows, spectra or exponential modes) are then computed and stored
once per order, O(U·N) instead of O(C·N), and every operation runs on the channels as a
``(U, S)`` array, the ``S`` channels of each order together: `Dense`'s far field becomes one
matrix product per order, over all its channels at once. This needs equal class sizes; with
unequal ones the weights are gathered per channel (``S = 1``), as without ``classes``.

`resolve_history` turns the ``history=`` keyword of `simulate` and `LearningProblem` (a string
or an instance) into a backend.
"""

from .base import AbstractHistory as AbstractHistory
from .base import ChannelLayout as ChannelLayout
from .base import channel_layout as channel_layout
from .resolve import AUTO_SOE_STEPS as AUTO_SOE_STEPS
from .resolve import BACKENDS as BACKENDS
from .resolve import HISTORY_CHOICES as HISTORY_CHOICES
from .resolve import resolve_history as resolve_history
