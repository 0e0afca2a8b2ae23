"""Per-parameter comparison of two gradients, and slope fits."""

from __future__ import annotations

import jax
import numpy as np


def _flat(tree) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p): np.asarray(x, dtype=float).reshape(-1) for p, x in leaves}


def _metrics(est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    ne, nr = float(np.linalg.norm(est)), float(np.linalg.norm(ref))
    cos = float(est @ ref / (ne * nr)) if ne > 0 and nr > 0 else float("nan")
    nonzero = ref != 0
    return {
        "cosine": cos,
        "norm_ratio": ne / nr if nr > 0 else float("nan"),
        "rel_l2": float(np.linalg.norm(est - ref)) / nr if nr > 0 else float("nan"),
        "sign_agreement": float(np.mean(np.sign(est[nonzero]) == np.sign(ref[nonzero])))
        if nonzero.any()
        else float("nan"),
        "max_abs_err": float(np.max(np.abs(est - ref))) if est.size else 0.0,
        "size": int(est.size),
    }


def compare(estimate, reference) -> dict:
    """Agreement of an estimated gradient pytree with a reference of the same structure.

    **Returns** ``{"overall": metrics, "groups": {leaf path: metrics}}`` where metrics are
    ``cosine``, ``norm_ratio`` (‖est‖/‖ref‖), ``rel_l2`` (‖est − ref‖/‖ref‖),
    ``sign_agreement`` (fraction of nonzero reference entries with the same sign),
    ``max_abs_err`` and ``size``.

    **Raises** `ValueError` if the two pytrees do not have the same structure.
    """
    fe, fr = _flat(estimate), _flat(reference)
    if fe.keys() != fr.keys() or any(fe[k].shape != fr[k].shape for k in fe):
        raise ValueError(
            f"estimate and reference have different structures: {sorted(fe)} vs {sorted(fr)}"
        )
    groups = {k: _metrics(fe[k], fr[k]) for k in fe}
    all_e = np.concatenate(list(fe.values())) if fe else np.zeros(0)
    all_r = np.concatenate(list(fr.values())) if fr else np.zeros(0)
    return {"overall": _metrics(all_e, all_r), "groups": groups}


def fit_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0)
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])
