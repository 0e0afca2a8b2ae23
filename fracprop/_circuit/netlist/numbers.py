"""SPICE engineering numbers: ``1k``, ``10uF``, ``2.2MEG``, ``1e-3``."""

from __future__ import annotations

import math
import re

from .result import NetlistError

_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(.*)", re.DOTALL)


_UNIT_LETTERS = re.compile(r"[A-Za-zµμ]*")


_SCALES = {
    "t": 1e12,
    "g": 1e9,
    "k": 1e3,
    "m": 1e-3,
    "u": 1e-6,
    "µ": 1e-6,  # micro sign
    "μ": 1e-6,  # Greek mu
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}


def _starts_like_number(token: str) -> bool:
    return _NUMBER.match(token) is not None


def parse_value(token: str) -> float:
    """Read an engineering number such as ``1k``, ``2.2uF``, ``1MEG``, ``60Hz`` or ``1e-3``.

    Scale factors (case-insensitive): ``T`` 1e12, ``G`` 1e9, ``MEG`` 1e6, ``k`` 1e3, ``m``/``M``
    1e-3, ``mil`` 25.4e-6, ``u`` (or ``µ``) 1e-6, ``n`` 1e-9, ``p`` 1e-12, ``f`` 1e-15. Letters
    after the number and its scale factor are units and are ignored.

    **Raises** `NetlistError` when the token does not start with a number or has something other
    than letters after it.
    """
    text = token.strip()
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise NetlistError(
            f"{token!r} is not a number; expected an engineering number such as 1k, 2.2u or 1e-3"
        )
    number, rest = match.groups()
    if not _UNIT_LETTERS.fullmatch(rest):
        raise NetlistError(
            f"{token!r} is not a number: {rest!r} follows {number!r}; only a scale factor "
            "(such as k, u, meg) and unit letters (such as V, Hz) may follow a number"
        )
    suffix = rest.lower()
    if suffix.startswith("meg"):
        scale = 1e6
    elif suffix.startswith("mil"):
        scale = 25.4e-6
    elif suffix and suffix[0] in _SCALES:
        scale = _SCALES[suffix[0]]
    else:
        scale = 1.0
    value = float(number) * scale
    if not math.isfinite(value):
        raise NetlistError(f"{token!r} is not a finite number")
    return value
