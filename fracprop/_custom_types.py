"""Shared jaxtyping aliases."""

import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

Scalar = Float[Array, ""]
ScalarLike = float | int | Float[ArrayLike, ""]
Vector = Float[Array, " n"]
BranchVector = Float[Array, " branches"]
NodeVector = Float[Array, " nodes"]
Unknowns = Float[Array, " unknowns"]
NodeTrace = Float[Array, "steps nodes"]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "BranchVector",
    "Float",
    "Int",
    "NodeTrace",
    "NodeVector",
    "Scalar",
    "ScalarLike",
    "Unknowns",
    "Vector",
    "np",
]
