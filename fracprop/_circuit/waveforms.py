"""Waveforms of the independent sources: DC, SIN, PULSE, PWL (SPICE semantics) and sampled arrays.

Every parameter is an array leaf, so `jax.grad` reaches it. A waveform is evaluated at a time
``t`` and returns a scalar.
"""

from __future__ import annotations

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike

#: At most this many breakpoints per source (a PULSE with many periods in the run).
MAX_BREAKPOINTS = 1_000_000


def _f(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


class AbstractWaveform(eqx.Module):
    """A scalar function of time."""

    @abc.abstractmethod
    def __call__(self, t: Array) -> Array:
        """The value at time ``t``."""

    @abc.abstractmethod
    def describe(self) -> str:
        """SPICE-like text for listings."""

    def breakpoints(self, tstop: float) -> np.ndarray:
        """The times in ``(0, tstop]`` where the waveform or its slope jumps (host values, from
        concrete parameters): a variable-step run ends a step at each of them and restarts its
        multistep method there, as SPICE does. Smooth waveforms have none."""
        return np.zeros((0,))


class DC(AbstractWaveform):
    """A constant value."""

    value: Array

    def __init__(self, value: ArrayLike):
        self.value = _f(value)

    def __call__(self, t):
        return self.value + 0 * t

    def describe(self):
        return f"DC {float(self.value):.6g}"


class Sin(AbstractWaveform):
    """SPICE ``SIN(VO VA FREQ TD THETA PHASE)``.

    ``v(t) = VO + VA·sin(2π·PHASE/360)`` for ``t < TD`` and
    ``v(t) = VO + VA·exp(−THETA·(t−TD))·sin(2π·FREQ·(t−TD) + 2π·PHASE/360)`` afterwards.
    """

    vo: Array
    va: Array
    freq: Array
    td: Array
    theta: Array
    phase: Array

    def __init__(self, vo, va, freq, td=0.0, theta=0.0, phase=0.0):
        self.vo, self.va, self.freq = _f(vo), _f(va), _f(freq)
        self.td, self.theta, self.phase = _f(td), _f(theta), _f(phase)

    def __call__(self, t):
        ph = 2 * jnp.pi * self.phase / 360
        tau = jnp.maximum(t - self.td, 0.0)
        on = self.vo + self.va * jnp.exp(-self.theta * tau) * jnp.sin(
            2 * jnp.pi * self.freq * tau + ph
        )
        return jnp.where(t < self.td, self.vo + self.va * jnp.sin(ph), on)

    def breakpoints(self, tstop):
        td = float(self.td)
        return np.asarray([td]) if 0.0 < td <= tstop else np.zeros((0,))

    def describe(self):
        vals = (self.vo, self.va, self.freq, self.td, self.theta, self.phase)
        return "SIN(" + " ".join(f"{float(x):.6g}" for x in vals) + ")"


class Pulse(AbstractWaveform):
    """SPICE ``PULSE(V1 V2 TD TR TF PW PER)``.

    Rise and fall are linear. ``PER = inf`` gives a single pulse. (The netlist parser applies
    SPICE's defaults: ``TR = TF = TSTEP`` and ``PW = PER = TSTOP`` when they are omitted or zero.)

    The period boundary is SPICE's: with ``τ = t − TD``, a new period starts only once
    ``τ > PER`` (then ``τ ← τ − PER·⌊τ/PER⌋``), so at ``τ = PER`` the pulse still has the
    value at the end of its first period, as in ngspice's ``vsrcload.c``. With the defaults
    ``PW = PER = TSTOP`` the pulse thus holds ``V2`` up to and including ``t = TSTOP``.
    """

    v1: Array
    v2: Array
    td: Array
    tr: Array
    tf: Array
    pw: Array
    per: Array

    def __init__(self, v1, v2, td=0.0, tr=0.0, tf=0.0, pw=np.inf, per=np.inf):
        self.v1, self.v2, self.td = _f(v1), _f(v2), _f(td)
        self.tr, self.tf, self.pw, self.per = _f(tr), _f(tf), _f(pw), _f(per)
        for name in ("tr", "tf", "pw", "per", "td"):
            x = getattr(self, name)
            if _concrete(x) and float(x) < 0:
                raise ValueError(f"PULSE {name.upper()}={float(x)} must be >= 0.")

    def __call__(self, t):
        tau = t - self.td
        per = jnp.where(jnp.isfinite(self.per), self.per, 1.0)
        wrapped = tau - per * jnp.floor(tau / per)
        tau_p = jnp.where(jnp.isfinite(self.per) & (tau > per), wrapped, tau)
        dv = self.v2 - self.v1
        tr = jnp.maximum(self.tr, 1e-300)
        tf = jnp.maximum(self.tf, 1e-300)
        rising = self.v1 + dv * tau_p / tr
        falling = self.v2 - dv * (tau_p - self.tr - self.pw) / tf
        value = jnp.where(
            tau_p < self.tr,
            rising,
            jnp.where(
                tau_p < self.tr + self.pw,
                self.v2,
                jnp.where(tau_p < self.tr + self.pw + self.tf, falling, self.v1),
            ),
        )
        return jnp.where(tau <= 0, self.v1, value)

    def breakpoints(self, tstop):
        """The four corners of every period, ``TD + k·PER + (0, TR, TR+PW, TR+PW+TF)``, up to
        ``tstop`` (at most `MAX_BREAKPOINTS`)."""
        td, tr, tf = float(self.td), float(self.tr), float(self.tf)
        pw, per = float(self.pw), float(self.per)
        corners = np.asarray([0.0, tr, tr + pw, tr + pw + tf])
        corners = corners[np.isfinite(corners)]
        if math.isfinite(per) and per > 0:
            periods = min(int(math.floor((tstop - td) / per)) + 1, MAX_BREAKPOINTS // 4)
            starts = td + per * np.arange(max(periods, 1))
            # A corner at the end of a period (TR+PW+TF = PER) is the next period's start.
            within = corners[corners < per] if np.any(corners < per) else corners[:1]
            times = (starts[:, None] + within[None, :]).reshape(-1)
        else:
            times = td + corners
        return np.unique(times[(times > 0.0) & (times <= tstop)])

    def describe(self):
        vals = (self.v1, self.v2, self.td, self.tr, self.tf, self.pw, self.per)
        return "PULSE(" + " ".join(f"{float(x):.6g}" for x in vals) + ")"


class PWL(AbstractWaveform):
    """SPICE ``PWL(t1 v1 t2 v2 …)``: linear interpolation, held constant outside the points."""

    times: Array
    values: Array

    def __init__(self, times: ArrayLike, values: ArrayLike):
        self.times, self.values = _f(times), _f(values)
        if self.times.ndim != 1 or self.times.shape != self.values.shape or self.times.size < 1:
            raise ValueError(
                f"PWL needs matching 1-D times and values; got shapes {self.times.shape} and "
                f"{self.values.shape}."
            )
        if _concrete(self.times):
            t = np.asarray(self.times)
            bad = np.nonzero(np.diff(t) <= 0)[0]
            if bad.size:
                k = int(bad[0])
                raise ValueError(
                    f"PWL times must increase strictly: time {t[k + 1]:.6g} (point {k + 2}) "
                    f"does not exceed {t[k]:.6g} (point {k + 1})."
                )

    def __call__(self, t):
        return jnp.interp(t, self.times, self.values)

    def breakpoints(self, tstop):
        t = np.asarray(self.times, np.float64)
        return t[(t > 0.0) & (t <= tstop)]

    def describe(self):
        pts = " ".join(f"{float(a):.6g} {float(b):.6g}" for a, b in zip(self.times, self.values))
        return f"PWL({pts})"


class Sampled(AbstractWaveform):
    """Samples ``values[k]`` at ``t = k·dt``, linearly interpolated, held after the last sample.

    These are the inputs and targets of learning problems. On a simulation grid with the same
    ``dt`` the source takes exactly the sampled values.
    """

    values: Array
    dt: Array

    def __init__(self, values: ArrayLike, dt: ArrayLike):
        self.values, self.dt = _f(values), _f(dt)
        if self.values.ndim != 1 or self.values.size < 1:
            raise ValueError(
                f"Sampled values must be a non-empty 1-D array; got shape {self.values.shape}."
            )
        if _concrete(self.dt) and not float(self.dt) > 0:
            raise ValueError(f"Sampled dt={float(self.dt)} must be > 0.")

    def __call__(self, t):
        k, k1, frac = sample_position(t, self.dt, self.values.shape[0])
        return self.values[k] + frac * (self.values[k1] - self.values[k])

    def breakpoints(self, tstop):
        t = float(self.dt) * np.arange(1, self.values.shape[0])
        return t[t <= tstop][:MAX_BREAKPOINTS]

    def describe(self):
        return f"SAMPLED({self.values.shape[0]} points, dt={float(self.dt):.6g})"


def sample_position(t, dt, n: int):
    """Linear interpolation on the grid ``k·dt``, ``k = 0 … n−1`` (clamped at both ends):
    ``(k, k + 1, fraction)`` with the value at ``t`` = ``x[k] + fraction·(x[k+1] − x[k])``."""
    pos = t / dt
    k = jnp.clip(jnp.floor(pos + 1e-9), 0, n - 1).astype(jnp.int32)
    k1 = jnp.minimum(k + 1, n - 1)
    frac = jnp.clip(pos - k.astype(pos.dtype), 0.0, 1.0)
    return k, k1, frac


def as_waveform(value) -> AbstractWaveform:
    """Accept a number (DC) or a waveform."""
    if isinstance(value, AbstractWaveform):
        return value
    return DC(value)
