r"""Circuit elements, grouped by type into batched Equinox modules (struct of arrays).

Every group holds the parameters of all its elements as array leaves (so `jax.grad` reaches
them) and the topology as static tuples. A two-terminal *branch* group maps its branch voltages
``v_b = v[a] − v[b]`` to the branch currents flowing from ``a`` to ``b`` through the element;
the map is elementwise, so the incremental conductances come from one `jax.jvp`.

Transient laws on the grid ``t_n = n h`` (DESIGN §1–§2):

* resistor ``i = g v``;
* diode ``i = IS (exp(v / (N Vt)) − 1) + gmin v`` (Shockley, SPICE's ``gmin = 1e-12`` S);
* capacitor ``q = C s(v)``, ``i_n = (Σ_k w_k q_{n−k}) / h`` with the kernel's multistep
  weights (`AbstractKernel.integer_weights`): backward Euler ``[1, −1]`` for `GL`, BDF2
  ``[3/2, −2, 1/2]`` after one backward-Euler step for `FBDF2`;
* inductor ``i = s(Φ) / L``, ``Σ_k w_k Φ_{n−k} = h v_n`` with the same weights;
* fractional memristor (seed eqs. 12–15) ``i = ᶜD^{1−α}[r̂(I^{1−α} v)]`` with ``r̂ = g s``:
  ``Ψ_n = h^{1−α} Σ_k w^{(−(1−α))}_k v_{n−k}`` and
  ``i_n = h^{−(1−α)} Σ_k w^{(1−α)}_k (r̂(Ψ_{n−k}) − r̂(0))``;
* constant-phase element ``i = C_α ᶜD^α v``: ``i_n = C_α h^{−α} Σ_k w^{(α)}_k (v_{n−k} − v_0)``.

Every sum runs from ``k = 0``: the current step's term ``w_0 x_n`` (``w_0`` from
`AbstractKernel.first_weight`: 1 for `GL`, ``(3/2)^a`` for `FBDF2`) goes into the Newton
solve, and the history backend supplies the rest. The fractional elements start from rest
(``v = 0`` and empty history for ``t ≤ 0``). They use the kernel's weights without Lubich
starting weights, so under `FBDF2` they are first order, like `GL`, for solutions that
behave like ``t^α`` near ``t = 0``. ``fp.solve_linear_fde`` has the starting weights for
the scalar linear equation.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array
from ._history import AbstractHistory
from ._kernels import AbstractKernel
from ._laws import AbstractLaw, Linear
from ._waveforms import AbstractWaveform

BOLTZMANN = 1.380649e-23
CHARGE = 1.602176634e-19
VT_27C = BOLTZMANN * (273.15 + 27.0) / CHARGE  # SPICE's default thermal voltage, 25.85 mV
GMIN = 1e-12


class StepSetup(eqx.Module):
    """What every group needs to know about the time grid."""

    dt: Array
    steps: int = eqx.field(static=True)
    kernel: AbstractKernel
    history: AbstractHistory


class AbstractGroup(eqx.Module):
    """Elements of one type. ``nodes[k] = (a, b)`` are node indices; ground is ``-1``."""

    names: eqx.AbstractVar[tuple[str, ...]]
    nodes: eqx.AbstractVar[tuple[tuple[int, int], ...]]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def parameter_names(self) -> tuple[str, ...]:
        return tuple(
            k for k, v in vars(self).items() if k not in ("names", "nodes") and eqx.is_array(v)
        )


class AbstractBranchGroup(AbstractGroup):
    """Two-terminal elements whose current is a function of their own voltage and history."""

    #: True for elements whose memory is a fractional convolution (they force a start from rest).
    fractional: eqx.AbstractClassVar[bool]
    #: How the element behaves at DC: "conductor", "open" or "short".
    dc: eqx.AbstractClassVar[str]

    @property
    def linear(self) -> bool:
        """True when the branch current is affine in the branch voltage at every step."""
        return isinstance(getattr(self, "law", None), Linear)

    def init(self, v0: Array, i0: Array | None, setup: StepSetup) -> Any:
        """Transient state at ``t = 0`` from the initial branch voltage (and current)."""
        return None

    def prepare(self, state: Any, n: Array, setup: StepSetup) -> Any:
        """Everything the current at step ``n`` needs from the past."""
        return None

    def current(self, v: Array, pre: Any, setup: StepSetup) -> Array:
        """Branch current at step ``n`` for branch voltage ``v`` (elementwise)."""
        raise NotImplementedError

    def advance(self, state: Any, v: Array, pre: Any, n: Array, setup: StepSetup) -> Any:
        """State after step ``n`` has converged at branch voltage ``v``."""
        return state

    def dc_current(self, v: Array) -> Array:
        """Current at DC (only for ``dc == "conductor"`` groups)."""
        raise NotImplementedError

    def limit(self, v_new: Array, v_old: Array) -> Array:
        """Newton voltage limiting (identity except for junctions)."""
        return v_new

    def row(self, k: int) -> str:
        """Parameter text of element ``k`` for listings."""
        return ""

    # -- time-reversed replay (adjoint network) ------------------------------------------
    # The replay runs in reversed step order τ = 0 … N−1 (forward step n = N − τ). Each
    # element sees its adjoint branch voltage μ and its own forward record ``g`` (the
    # incremental conductance ∂i_b[n]/∂v_b[n] at step n) and returns its adjoint current
    # ι[n] = Σ_{m ≥ n} (∂i_b[m]/∂v_b[n]) μ[m]. Static elements (resistors, diodes) use the
    # default ι = g μ; elements with memory override the four methods below.

    def adjoint_init(self, setup: StepSetup) -> Any:
        """Replay state before the first reversed step."""
        return None

    def adjoint_prepare(self, state: Any, tau: Array, setup: StepSetup) -> Any:
        """What the adjoint current at reversed step ``tau`` needs from the replay's past."""
        return None

    def adjoint_current(self, mu: Array, g: Array, pre: Any, setup: StepSetup) -> Array:
        """Adjoint current for adjoint branch voltage ``mu`` (linear in ``mu``)."""
        return g * mu

    def adjoint_advance(
        self, state: Any, mu: Array, g: Array, pre: Any, tau: Array, setup: StepSetup
    ) -> Any:
        """Replay state after reversed step ``tau``."""
        return state


class Resistors(AbstractBranchGroup):
    """Linear resistors ``i = g v``. The conductance ``g`` (siemens) is the trainable leaf."""

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    g: Array
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "conductor"
    linear: ClassVar[bool] = True

    def current(self, v, pre, setup):
        return self.g * v

    def dc_current(self, v):
        return self.g * v

    def row(self, k):
        g = float(self.g[k])
        r = f"{1.0 / g:.6g}" if g != 0 else "inf"
        return f"R={r} ohm (g={g:.6g} S)"


def pnjlim(v_new: Array, v_old: Array, vt: Array, vcrit: Array) -> Array:
    """SPICE's junction voltage limiting (``DEVpnjlim``) for one Newton update."""
    big_step = (v_new > vcrit) & (jnp.abs(v_new - v_old) > 2 * vt)
    arg = 1 + (v_new - v_old) / vt
    from_on = jnp.where(arg > 0, v_old + vt * jnp.log(jnp.maximum(arg, 1e-300)), vcrit)
    from_off = vt * jnp.log(jnp.maximum(v_new / vt, 1e-300))
    limited = jnp.where(v_old > 0, from_on, from_off)
    return jnp.where(big_step, limited, v_new)


class Diodes(AbstractBranchGroup):
    """Shockley diodes ``i = IS (exp(v/(N Vt)) − 1) + gmin v``, anode ``a``, cathode ``b``.

    ``Vt`` is SPICE's thermal voltage at 27 °C and ``gmin = 1e-12`` S is SPICE's parallel
    conductance. Newton steps are limited as SPICE's ``pnjlim`` does.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    is_: Array
    n: Array
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "conductor"

    def _i(self, v):
        nvt = self.n * VT_27C
        # The exponent is capped far above any converged operating point; pnjlim keeps Newton
        # iterates below it, so the cap only guards against overflow to inf.
        return self.is_ * jnp.expm1(jnp.minimum(v / nvt, 200.0)) + GMIN * v

    def current(self, v, pre, setup):
        return self._i(v)

    def dc_current(self, v):
        return self._i(v)

    def limit(self, v_new, v_old):
        nvt = self.n * VT_27C
        vcrit = nvt * jnp.log(nvt / (jnp.sqrt(2.0) * self.is_))
        return pnjlim(v_new, v_old, nvt, vcrit)

    def row(self, k):
        return f"IS={float(self.is_[k]):.6g} N={float(self.n[k]):.6g}"


def _multistep_table(kernel: AbstractKernel) -> np.ndarray:
    """The kernel's `integer_weights` as a zero-padded array of shape ``(rows, p + 1)``."""
    rows = kernel.integer_weights()
    width = max(len(r) for r in rows)
    return np.asarray([tuple(r) + (0.0,) * (width - len(r)) for r in rows], dtype=np.float64)


def _multistep_weights(setup: StepSetup, n: Array, dtype) -> Array:
    """Weights ``w_0 … w_p`` of ``h·d/dt`` at forward step ``n`` (zero for ``n > steps``).

    Row ``min(n, rows) − 1`` of the kernel's `integer_weights`: the start for the first steps,
    then the multistep method. Steps beyond the run (``n > steps``, met by the replay) have no
    equation, so their weights are zero.
    """
    table = _multistep_table(setup.kernel)
    row = jnp.clip(n, 1, table.shape[0]) - 1
    w = jnp.asarray(table, dtype)[row]
    return jnp.where((n >= 1) & (n <= setup.steps), w, jnp.zeros_like(w))


def _adjoint_weights(setup: StepSetup, tau: Array, dtype) -> tuple[Array, Array]:
    """For reversed step ``tau`` (forward ``n = N − tau``): ``w^{(n)}_0`` and the lagged
    weights ``w^{(n+k)}_k``, ``k = 1 … p``, that couple step ``n`` to the steps after it."""
    n = setup.steps - tau
    p = _multistep_table(setup.kernel).shape[1] - 1
    w0 = _multistep_weights(setup, n, dtype)[0]
    lagged = jnp.stack([_multistep_weights(setup, n + k, dtype)[k] for k in range(1, p + 1)])
    return w0, lagged


def multistep_rate(x: Array, kernel: AbstractKernel, dt: Array) -> Array:
    """``dx/dt`` at every grid point by the kernel's multistep method, along the last axis.

    ``(Σ_k w^{(n)}_k x[n−k]) / h`` for ``n ≥ 1`` with ``x[m] = x[0]`` for ``m < 0`` (never used,
    the start is one-step), and ``0`` at ``n = 0``: the current a capacitor of 1 F would
    draw with the voltage ``x`` across it, as `Capacitors` steps it.
    """
    table = _multistep_table(kernel)
    steps = x.shape[-1] - 1
    n = np.arange(steps + 1)
    rows = table[np.clip(n, 1, table.shape[0]) - 1]  # (N+1, p+1)
    rows[0] = 0.0
    out = jnp.zeros_like(x)
    for k in range(table.shape[1]):
        lagged = jnp.concatenate([jnp.broadcast_to(x[..., :1], x.shape[:-1] + (k,)), x], -1)
        out = out + jnp.asarray(rows[:, k], x.dtype) * lagged[..., : steps + 1]
    return out / dt


def _shift_in(past: Array, x: Array) -> Array:
    """Past values ``(x[n−1], …, x[n−p])`` along axis 0, after ``x[n]`` arrives."""
    return jnp.concatenate([x[None], past[:-1]], axis=0)


class Capacitors(AbstractBranchGroup):
    r"""Nonlinear capacitors ``q = C s(v)``, ``i = dq/dt`` by the kernel's multistep method.

    ``i_n = (Σ_{k=0}^{p} w^{(n)}_k q_{n−k}) / h`` with the kernel's `integer_weights`:
    backward Euler ``[1, −1]`` for `GL`; BDF2 ``[3/2, −2, 1/2]`` after one backward-Euler step
    for `FBDF2`. Charges before ``t = 0`` never enter (the first step is backward Euler).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    c: Array
    law: AbstractLaw
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "open"

    def charge(self, v):
        return self.c * self.law(v)

    def init(self, v0, i0, setup):
        # Past charges q_{n−1}, …, q_{n−p}; before t = 0 they equal q_0 (and are never used).
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.broadcast_to(self.charge(v0), (p,) + v0.shape)

    def prepare(self, state, n, setup):
        w = _multistep_weights(setup, n, state.dtype)
        return w[0], jnp.tensordot(w[1:], state, axes=1)

    def current(self, v, pre, setup):
        w0, past = pre
        return (w0 * self.charge(v) + past) / setup.dt

    def advance(self, state, v, pre, n, setup):
        return _shift_in(state, self.charge(v))

    # Adjoint of i_m = (Σ_k w^{(m)}_k q(v_{m−k}))/h: ι[n] = Σ_k (∂i_{n+k}/∂v_n) μ[n+k]
    #   = (q'(v_n)/h) Σ_{k=0}^{p} w^{(n+k)}_k μ[n+k]
    #   = g[n] (μ[n] + Σ_{k≥1} w^{(n+k)}_k μ[n+k] / w^{(n)}_0),
    # with g[n] = w^{(n)}_0 q'(v_n)/h the recorded incremental conductance. The state holds
    # μ[n+1], …, μ[n+p] (the replay's last p values).
    def adjoint_init(self, setup):
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.zeros((p, len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        w0, lagged = _adjoint_weights(setup, tau, state.dtype)
        return jnp.tensordot(lagged, state, axes=1) / w0

    def adjoint_current(self, mu, g, pre, setup):
        return g * (mu + pre)

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, mu)

    def row(self, k):
        return f"C={float(self.c[k]):.6g} F law={self.law.describe(k)}"


class Inductors(AbstractBranchGroup):
    r"""Nonlinear inductors ``i = s(Φ)/L``, ``dΦ/dt = v`` by the kernel's multistep method.

    ``Σ_{k=0}^{p} w^{(n)}_k Φ_{n−k} = h v_n`` with the kernel's `integer_weights` (backward
    Euler ``Φ_n = Φ_{n−1} + h v_n`` for `GL`; BDF2 after one backward-Euler step for `FBDF2`).
    At the DC operating point an inductor is a short whose current is an MNA unknown; the
    initial flux is ``Φ_0 = s⁻¹(L i_0)``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    l: Array
    law: AbstractLaw
    fractional: ClassVar[bool] = False
    dc: ClassVar[str] = "short"

    def init(self, v0, i0, setup):
        # Past fluxes Φ_{n−1}, …, Φ_{n−p}; before t = 0 they equal Φ_0 (and are never used).
        phi0 = jnp.zeros_like(v0) if i0 is None else self.law.inverse(self.l * i0)
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.broadcast_to(phi0, (p,) + v0.shape)

    def prepare(self, state, n, setup):
        w = _multistep_weights(setup, n, state.dtype)
        return w[0], jnp.tensordot(w[1:], state, axes=1)

    def _flux(self, v, pre, setup):
        w0, past = pre
        return (setup.dt * v - past) / w0

    def current(self, v, pre, setup):
        return self.law(self._flux(v, pre, setup)) / self.l

    def advance(self, state, v, pre, n, setup):
        return _shift_in(state, self._flux(v, pre, setup))

    # Adjoint of W Φ = h v, i = s(Φ)/L, with W lower triangular, W[m, m−k] = w^{(m)}_k:
    # ι = h W^{−T} diag(s'(Φ)/L) μ, i.e. back substitution in reversed time,
    #   ι[n] = g[n] μ[n] − Σ_{k≥1} w^{(n+k)}_k ι[n+k] / w^{(n)}_0,
    # with g[n] = h s'(Φ_n)/(L w^{(n)}_0) recorded. The state holds ι[n+1], …, ι[n+p].
    # (Backward Euler: ι[n] = g[n] μ[n] + ι[n+1], the running sum.)
    def adjoint_init(self, setup):
        p = _multistep_table(setup.kernel).shape[1] - 1
        return jnp.zeros((p, len(self.names)), setup.dt.dtype)

    def adjoint_prepare(self, state, tau, setup):
        w0, lagged = _adjoint_weights(setup, tau, state.dtype)
        return -jnp.tensordot(lagged, state, axes=1) / w0

    def adjoint_current(self, mu, g, pre, setup):
        return g * mu + pre

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return _shift_in(state, g * mu + pre)

    def row(self, k):
        return f"L={float(self.l[k]):.6g} H law={self.law.describe(k)}"


class _FracState(eqx.Module):
    hist: Any
    extra: Array


# ------------------------------------------------------------------------- shared orders
#
# Fractional groups may carry ``order_classes``: for each element the index of its class of
# equal orders α, recorded from concrete values by `Circuit.share_orders` (which `simulate`
# and `LearningProblem` call for orders that are not trained). The history backends then
# compute and store the convolution weights once per class (see `_history.channel_layout`).
# Weights shared by a class can only give the derivative with respect to the class's common
# α, not each element's, so differentiating such α raises (`_fixed_orders`), and a run whose
# α no longer agree within a class raises too (`shared_order_mismatch`, checked in `_run`).


def order_classes_of(values) -> tuple[int, ...]:
    """The class of every entry of ``values``, classes numbered by first occurrence."""
    values = np.asarray(values).reshape(-1)
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return tuple(int(r) for r in rank[inverse.reshape(-1)])


def _representatives(classes: tuple[int, ...]) -> np.ndarray:
    """The first element of each class, in class order."""
    index = np.asarray(classes)
    return np.asarray([int(np.flatnonzero(index == u)[0]) for u in range(index.max() + 1)])


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _fixed_orders(alpha: Array, names: tuple[str, ...]) -> Array:
    """``alpha`` unchanged; raises if it is differentiated (its weights are shared)."""
    return alpha


def _fixed_orders_jvp(names, primals, tangents):
    (alpha,), (d_alpha,) = primals, tangents
    if not isinstance(d_alpha, jax.custom_derivatives.SymbolicZero):
        raise ValueError(
            f"the orders alpha of {', '.join(names)} are shared (equal values use one set of "
            "convolution weights), which gives no derivative per element. To differentiate "
            "alpha, call circuit.share_orders(False) before simulating, or list the alpha in "
            "LearningProblem(trainable=...), which keeps trained orders per element"
        )
    return alpha, d_alpha


_fixed_orders.defjvp(_fixed_orders_jvp, symbolic_zeros=True)


def distinct_orders(group) -> tuple[Array, tuple[int, ...] | None]:
    """``(orders, classes)`` of a fractional group's elements for `AbstractHistory.init`:
    its α per element and ``None``, or, with ``order_classes``, the α of each class."""
    if group.order_classes is None:
        return group.alpha, None
    alpha = _fixed_orders(group.alpha, group.names)
    return alpha[_representatives(group.order_classes)], group.order_classes


def shared_order_mismatch(group) -> Array:
    """True when some element's α differs from the α its class shares."""
    classes = group.order_classes
    alpha = jax.lax.stop_gradient(group.alpha)
    return jnp.any(alpha != alpha[_representatives(classes)][np.asarray(classes)])


class Memristors(AbstractBranchGroup):
    r"""Ψ-controlled fractional memristors of order α ∈ (0, 1] (seed eqs. 12–15, DESIGN §1).

    ``i = ᶜD^{1−α}[r̂(Ψ)]`` with ``Ψ = I^{1−α} v`` and ``r̂(Ψ) = g s(Ψ)``. Each memristor owns
    two history channels: ``v`` (for ``I^{1−α}``) and ``r̂(Ψ) − r̂(0)`` (for ``D^{1−α}``). With
    a linear law the two Grünwald–Letnikov convolutions are inverses, so the element is exactly
    a resistor of conductance ``g``. With α = 1 it is the nonlinear resistor ``i = g s(v)``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    g: Array
    alpha: Array
    law: AbstractLaw
    order_classes: tuple[int, ...] | None = eqx.field(static=True, default=None)
    fractional: ClassVar[bool] = True
    dc: ClassVar[str] = "conductor"

    def _r(self, psi):
        return self.g * self.law(psi)

    def _init_history(self, setup):
        """History of the channels ``v`` (order −(1−α)) and ``r̂ − r̂(0)`` (order 1−α)."""
        alpha, classes = distinct_orders(self)
        a = 1.0 - alpha
        if classes is not None:
            classes = classes + tuple(len(a) + c for c in classes)
        return setup.history.init(setup.kernel, jnp.concatenate([-a, a]), setup.steps, classes)

    def init(self, v0, i0, setup):
        hist = self._init_history(setup)
        r0 = self._r(jnp.zeros_like(v0))
        return _FracState(hist=hist, extra=r0)

    def prepare(self, state, n, setup):
        return setup.history.history(state.hist, n), state.extra

    def _first_weights(self, setup):
        """``w_0`` of ``I^{1−α}`` and of ``D^{1−α}`` (1 and 1 for GL; their product is 1)."""
        a = 1.0 - self.alpha
        return setup.kernel.first_weight(-a), setup.kernel.first_weight(a)

    def _psi(self, v, pre, setup):
        h_all, _ = pre
        m = len(self.names)
        w0_int, _ = self._first_weights(setup)
        return jnp.power(setup.dt, 1.0 - self.alpha) * (w0_int * v + h_all[:m])

    def current(self, v, pre, setup):
        h_all, r0 = pre
        m = len(self.names)
        r = self._r(self._psi(v, pre, setup))
        _, w0_der = self._first_weights(setup)
        return jnp.power(setup.dt, self.alpha - 1.0) * (w0_der * (r - r0) + h_all[m:])

    def advance(self, state, v, pre, n, setup):
        _, r0 = pre
        r = self._r(self._psi(v, pre, setup))
        hist = setup.history.push(state.hist, n, jnp.concatenate([v, r - r0]))
        return _FracState(hist=hist, extra=state.extra)

    def dc_current(self, v):
        raise RuntimeError("fractional memristors have no DC operating point; start from rest")

    # Adjoint of i = D^{1−α}[r̂(I^{1−α} v)]: the reverse order I^{1−α} ∘ r̂'(Ψ) ∘ D^{1−α},
    # each convolution read backwards in time (DESIGN §5). In reversed time τ:
    #   ν[τ] = h^{α−1} (d_0 μ[τ] + Σ_{j≥1} d_j μ[τ−j]),   ζ[τ] = r̂'(Ψ)[τ] ν[τ],
    #   ι[τ] = h^{1−α} (a_0 ζ[τ] + Σ_{j≥1} a_j ζ[τ−j]),
    # with d the D^{1−α} weights, a the I^{1−α} weights and r̂'(Ψ_n) = g[n] / (a_0 d_0), g[n]
    # the recorded incremental conductance ∂i_n/∂v_n = d_0 r̂'(Ψ_n) a_0 (the h powers cancel;
    # a_0 d_0 = 1 for GL and FBDF2, whose weights for ±(1−α) are convolution inverses).
    def adjoint_init(self, setup):
        return self._init_history(setup)

    def adjoint_prepare(self, state, tau, setup):
        return setup.history.history(state, tau)

    def _adjoint_parts(self, mu, g, pre, setup):
        m = len(self.names)
        w0_int, w0_der = self._first_weights(setup)
        nu = jnp.power(setup.dt, self.alpha - 1.0) * (w0_der * mu + pre[m:])
        zeta = g / (w0_int * w0_der) * nu
        iota = jnp.power(setup.dt, 1.0 - self.alpha) * (w0_int * zeta + pre[:m])
        return zeta, iota

    def adjoint_current(self, mu, g, pre, setup):
        return self._adjoint_parts(mu, g, pre, setup)[1]

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        zeta, _ = self._adjoint_parts(mu, g, pre, setup)
        return setup.history.push(state, tau, jnp.concatenate([zeta, mu]))

    def row(self, k):
        return (
            f"g={float(self.g[k]):.6g} S alpha={float(self.alpha[k]):.6g} "
            f"law={self.law.describe(k)}"
        )


class CPEs(AbstractBranchGroup):
    r"""Constant-phase elements (fractional capacitors) ``i = C_α ᶜD^α v``, α ∈ (0, 1].

    Impedance ``1/(C_α s^α)``; α = 1 is a linear capacitor integrated by backward Euler.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    c: Array
    alpha: Array
    order_classes: tuple[int, ...] | None = eqx.field(static=True, default=None)
    fractional: ClassVar[bool] = True
    dc: ClassVar[str] = "open"
    linear: ClassVar[bool] = True

    def _init_history(self, setup):
        alpha, classes = distinct_orders(self)
        return setup.history.init(setup.kernel, alpha, setup.steps, classes)

    def init(self, v0, i0, setup):
        return _FracState(hist=self._init_history(setup), extra=v0)

    def prepare(self, state, n, setup):
        return setup.history.history(state.hist, n), state.extra

    def current(self, v, pre, setup):
        h, v0 = pre
        w0 = setup.kernel.first_weight(self.alpha)
        return self.c * jnp.power(setup.dt, -self.alpha) * (w0 * (v - v0) + h)

    def advance(self, state, v, pre, n, setup):
        _, v0 = pre
        return _FracState(hist=setup.history.push(state.hist, n, v - v0), extra=state.extra)

    # Adjoint of i_m = C h^{−α} Σ_k w_k v_{m−k}: the same convolution in reversed time,
    # ι[τ] = C h^{−α} (w_0 μ[τ] + Σ_{j≥1} w_j μ[τ−j]) = g (μ[τ] + Σ_{j≥1} w_j μ[τ−j] / w_0)
    # with g = C h^{−α} w_0 = ∂i_n/∂v_n recorded.
    def adjoint_init(self, setup):
        return self._init_history(setup)

    def adjoint_prepare(self, state, tau, setup):
        return setup.history.history(state, tau)

    def adjoint_current(self, mu, g, pre, setup):
        return g * (mu + pre / setup.kernel.first_weight(self.alpha))

    def adjoint_advance(self, state, mu, g, pre, tau, setup):
        return setup.history.push(state, tau, mu)

    def row(self, k):
        return f"C_alpha={float(self.c[k]):.6g} alpha={float(self.alpha[k]):.6g}"


class AbstractSourceGroup(AbstractGroup):
    """Independent sources; ``values(t)`` gives every source's value at time ``t``."""

    waveforms: eqx.AbstractVar[tuple[AbstractWaveform, ...]]

    def values(self, t: Array) -> Array:
        if not self.waveforms:
            return jnp.zeros((0,), dtype=jnp.asarray(t).dtype)
        return jnp.stack([jnp.asarray(w(t), dtype=jnp.asarray(t).dtype) for w in self.waveforms])

    def row(self, k):
        return self.waveforms[k].describe()


class VSources(AbstractSourceGroup):
    """Independent voltage sources ``v[a] − v[b] = E(t)``; their currents are MNA unknowns.

    The current unknown follows SPICE: positive when it flows into the ``+`` node ``a``, through
    the source, and out of ``b``. The power delivered to the circuit is ``−E(t)·i``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    waveforms: tuple[AbstractWaveform, ...]


class ISources(AbstractSourceGroup):
    """Independent current sources: ``I(t)`` flows from ``a`` through the source to ``b``.

    The power delivered to the circuit is ``−(v[a] − v[b])·I(t)``.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    nodes: tuple[tuple[int, int], ...] = eqx.field(static=True)
    waveforms: tuple[AbstractWaveform, ...]


def tree_dtype_cast(tree, dtype):
    """Cast every floating array leaf to ``dtype``."""

    def cast(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)
