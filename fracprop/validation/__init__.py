"""Validation of gradient estimators against the true gradient (`jax.grad` through the run).

- `compare` gives, per parameter group and overall: cosine similarity, norm ratio, relative L2
  error, fraction of parameters with the right sign, and max abs error.
- `run_validation` sweeps the regime (ωτ), β, dt, α, horizon, depth, width and seeds as a
  `ValidationConfig` says, and `write_report` writes ``report.json``, ``report.md`` and plots
  (cosine against ωτ per estimator; error against β on log–log axes with fitted slopes).

Each sweep point is one example by default. With ``batch: B`` every point has ``B`` examples
(same network and teacher, different input waveforms), every gradient is the batch mean, and
the batch is split over all visible devices (``shard``, as in training) by
`fracprop.sharded_estimate`.
"""

from .compare import compare as compare
from .compare import fit_slope as fit_slope
from .report import markdown_report as markdown_report
from .report import regime_table as regime_table
from .report import write_report as write_report
from .sweeps import ValidationConfig as ValidationConfig
from .sweeps import beta_sweep as beta_sweep
from .sweeps import load_validation_config as load_validation_config
from .sweeps import make_estimator as make_estimator
from .sweeps import run_validation as run_validation
