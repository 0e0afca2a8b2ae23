"""The validation module: gradient comparison metrics, slope fits, configs and reports."""

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import fracprop as fp
from fracprop.experiments.config import to_dict
from fracprop.validation import (
    ValidationConfig,
    beta_sweep,
    compare,
    fit_slope,
    load_validation_config,
    run_validation,
    write_report,
)
from fracprop.validation.sweeps import _gradients, _mesh

# -------------------------------------------------------------------------------- 12. compare
REF = {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0, -4.0])}
METRICS = {"cosine", "norm_ratio", "rel_l2", "sign_agreement", "max_abs_err", "size"}


def test_compare_equal_trees():
    out = compare(REF, REF)
    m = out["overall"]
    assert set(m) == METRICS
    # Exact arithmetic on small integers: cosine is x·x/‖x‖² = 30/30 up to one rounding.
    assert m["cosine"] == pytest.approx(1.0, abs=1e-15)
    assert m["rel_l2"] == 0.0
    assert m["norm_ratio"] == 1.0
    assert m["sign_agreement"] == 1.0
    assert m["max_abs_err"] == 0.0
    assert m["size"] == 4


def test_compare_doubled():
    est = {k: 2 * v for k, v in REF.items()}
    m = compare(est, REF)["overall"]
    assert m["cosine"] == pytest.approx(1.0, abs=1e-15)  # one rounding
    assert m["norm_ratio"] == pytest.approx(2.0, rel=1e-15)
    assert m["rel_l2"] == pytest.approx(1.0, rel=1e-15)  # ‖2x − x‖ / ‖x‖
    assert m["sign_agreement"] == 1.0
    assert m["max_abs_err"] == 4.0  # |−8 − (−4)|


def test_compare_half_the_signs_flipped():
    est = {"a": jnp.array([-1.0, 2.0]), "b": jnp.array([3.0, 4.0])}
    out = compare(est, REF)
    m = out["overall"]
    assert m["sign_agreement"] == 0.5
    # est·ref = −1 + 4 + 9 − 16 = −4, ‖est‖ = ‖ref‖ = √30.
    assert m["cosine"] == pytest.approx(-4 / 30, rel=1e-14)
    assert m["norm_ratio"] == pytest.approx(1.0, rel=1e-15)
    assert m["rel_l2"] == pytest.approx(math.sqrt(4 + 64) / math.sqrt(30), rel=1e-14)
    assert m["max_abs_err"] == 8.0
    # One group keyed by each leaf's path, with the same metrics.
    groups = out["groups"]
    assert set(groups) == {"['a']", "['b']"}
    for g in groups.values():
        assert set(g) == METRICS
        assert g["sign_agreement"] == 0.5
        assert g["size"] == 2
    assert groups["['a']"]["cosine"] == pytest.approx(3 / 5, rel=1e-14)  # (−1+4)/(√5·√5)
    assert groups["['b']"]["cosine"] == pytest.approx(-7 / 25, rel=1e-14)  # (9−16)/25


def test_compare_sign_agreement_ignores_zero_reference_entries():
    ref = {"a": jnp.array([0.0, 1.0, -1.0])}
    est = {"a": jnp.array([5.0, 1.0, 1.0])}
    assert compare(est, ref)["overall"]["sign_agreement"] == 0.5


def test_compare_zero_reference_gives_nan():
    zero = {"a": jnp.zeros(2)}
    m = compare({"a": jnp.ones(2)}, zero)["overall"]
    assert math.isnan(m["cosine"]) and math.isnan(m["norm_ratio"]) and math.isnan(m["rel_l2"])


def test_compare_on_circuit_pytrees():
    # Gradients have the structure of problem.params(): a Circuit with None at untrained leaves.
    circuit, inputs, outputs = fp.layered_network()
    problem = fp.LearningProblem(circuit, inputs=inputs, outputs=outputs, dt=0.1, steps=10)
    params = problem.params()
    out = compare(params, params)
    assert out["overall"]["cosine"] == pytest.approx(1.0, abs=1e-14)
    assert out["overall"]["size"] == 12  # 2·4 + 4·1 synapses
    assert len(out["groups"]) == 1  # the one resistor-conductance leaf
    assert compare(jax.tree.map(lambda x: -x, params), params)["overall"]["cosine"] == (
        pytest.approx(-1.0, abs=1e-14)
    )


@pytest.mark.parametrize(
    "est",
    [
        {"a": jnp.array([1.0, 2.0])},  # a leaf missing
        {"a": jnp.array([1.0, 2.0]), "c": jnp.array([3.0, -4.0])},  # a different key
        {"a": jnp.array([1.0, 2.0]), "b": jnp.array([3.0, -4.0, 5.0])},  # a different shape
    ],
    ids=["missing-leaf", "other-key", "other-shape"],
)
def test_compare_mismatched_structures(est):
    with pytest.raises(ValueError, match="different structures"):
        compare(est, REF)


# ------------------------------------------------------------------------------ 13. fit_slope
def test_fit_slope_recovers_power_law():
    x = np.logspace(-4, -1, 7)
    # Exact power law: least squares on logs recovers the exponent to round-off.
    assert fit_slope(x, 3.0 * x**2.5) == pytest.approx(2.5, abs=1e-12)
    assert fit_slope(x, 0.1 / x) == pytest.approx(-1.0, abs=1e-12)


def test_fit_slope_ignores_non_positive_points():
    x = np.array([1e-3, 1e-2, 1e-1, 1.0, 0.0])
    y = np.array([2e-6, 2e-4, 2e-2, 0.0, 5.0])  # slope 2 on the positive pairs
    assert fit_slope(x, y) == pytest.approx(2.0, abs=1e-12)


def test_fit_slope_noisy_power_law():
    rng = np.random.default_rng(0)
    x = np.logspace(-3, 0, 20)
    y = x**1.5 * np.exp(0.01 * rng.standard_normal(x.size))
    # 1 % multiplicative noise over three decades: slope standard error ≈ 0.01/(σ_logx·√20)
    # ≈ 2e-3, so 0.02 is ten standard errors.
    assert fit_slope(x, y) == pytest.approx(1.5, abs=0.02)


# --------------------------------------------------------------------------- 14. config files
def _write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_config_loads_and_round_trips(tmp_path):
    text = """
network:
  n_in: 3
  hidden: [2, 2]
  g_syn: [0.25, 0.75]
  hidden_capacitor_law: tanh
steps: 120
beta: 1e-3          # PyYAML reads this as a string; the loader converts it
eta: 2.0e-3
estimators: [replay, ep_half]
omega_tau: [1.0e-3, 1]
betas: [1.0e-2, 1.0e-3]
widths: [3]
"""
    cfg = load_validation_config(_write(tmp_path, text))
    assert isinstance(cfg, ValidationConfig)
    assert cfg.network == fp.NetworkSpec(
        n_in=3, hidden=(2, 2), g_syn=(0.25, 0.75), hidden_capacitor_law="tanh"
    )
    assert cfg.steps == 120 and isinstance(cfg.steps, int)
    assert cfg.beta == 1e-3 and isinstance(cfg.beta, float)
    assert cfg.eta == 2e-3
    assert cfg.estimators == ("replay", "ep_half")
    assert cfg.omega_tau == (1e-3, 1.0) and all(isinstance(v, float) for v in cfg.omega_tau)
    assert cfg.betas == (1e-2, 1e-3)
    assert cfg.widths == (3,)
    assert cfg.seeds == ValidationConfig().seeds  # untouched keys keep their defaults
    # The resolved config, saved as YAML, loads back to the same config.
    again = load_validation_config(_write(tmp_path, yaml.safe_dump(to_dict(cfg)), "again.yaml"))
    assert again == cfg


def test_empty_config_is_the_default(tmp_path):
    assert load_validation_config(_write(tmp_path, "")) == ValidationConfig()


def test_config_error_is_value_error():
    assert issubclass(fp.ConfigError, ValueError)


def test_unknown_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "steps: 100\nbogus_key: 1\n")
    with pytest.raises(fp.ConfigError, match="unknown key 'bogus_key'") as e:
        load_validation_config(path)
    assert str(path) in str(e.value)


def test_unknown_nested_key_names_key_and_file(tmp_path):
    path = _write(tmp_path, "network:\n  hidden: [4]\n  widht: 3\n")
    with pytest.raises(fp.ConfigError, match=r"unknown key '?network\.'?widht'") as e:
        load_validation_config(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ('steps: "abc"', "steps='abc' must be an integer"),
        ("steps: 3.5", "steps=3.5 must be an integer"),
        ("steps: true", "steps=True must be an integer"),
        ("beta: abc", "beta='abc' must be a number"),
        ("omega_tau: 3", "omega_tau=3 must be a list"),
        ("omega_tau: [1, x]", "omega_tau[1]='x' must be a number"),
        ("estimators: replay", "estimators='replay' must be a list"),
        ("network: 3", "network must be a mapping"),
        ("network: {hidden: 4}", "network.hidden=4 must be a list"),
        ("network: {alpha: x}", "network.alpha='x' must be a number"),
        ("network: {law: 3}", "network.law=3 must be a string"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path, text, message):
    path = _write(tmp_path, text + "\n")
    with pytest.raises(fp.ConfigError, match=re.escape(message)) as e:
        load_validation_config(path)
    assert str(path) in str(e.value)


def test_unknown_estimator_name(tmp_path):
    path = _write(tmp_path, "estimators: [replay, backprop_magic]\n")
    with pytest.raises(ValueError, match="unknown estimator 'backprop_magic'"):
        load_validation_config(path)


def test_bad_beta_rejected_when_loading(tmp_path):
    path = _write(tmp_path, "beta: -1.0\nestimators: [ep]\n")
    with pytest.raises(ValueError, match="beta=-1.0 must be a positive number"):
        load_validation_config(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(fp.ConfigError, match="not found"):
        load_validation_config(tmp_path / "absent.yaml")
    with pytest.raises(fp.ConfigError, match="not valid YAML"):
        load_validation_config(_write(tmp_path, "steps: [\n"))
    with pytest.raises(fp.ConfigError, match="must be a mapping"):
        load_validation_config(_write(tmp_path, "- a\n- b\n"))


def test_fixed_length_tuple_checked(tmp_path):
    path = _write(tmp_path, "network: {g_syn: [0.5, 1.5, 2.0]}\n")
    with pytest.raises(fp.ConfigError, match="network.g_syn"):
        load_validation_config(path)


def test_unknown_law_name_rejected(tmp_path):
    path = _write(tmp_path, "network: {law: bogus}\n")
    with pytest.raises(ValueError, match="bogus"):
        load_validation_config(path)


# ----------------------------------------------------------------------- 15. run and report
TINY = """
network:
  hidden: [2]
steps: 80
estimators: [replay, ep]
omega_tau: [1.0e-2, 1.0]
betas: [1.0e-2, 3.0e-3, 1.0e-3]
beta_omega_tau: 1.0
steps_sweep: [80]
alphas: [0.5]
periods: [1.0]
depths: [1]
widths: [2]
seeds: [0]
sweep_omega_tau: 1.0
"""
AXES = ("omega_tau", "steps", "alpha", "periods", "depth", "width", "seed")


def test_run_validation_and_write_report(tmp_path):
    cfg = load_validation_config(_write(tmp_path, TINY))
    messages = []
    report = run_validation(cfg, progress=messages.append)
    assert messages[:2] == ["omega_tau=0.01", "omega_tau=1"]
    assert "beta sweep" in messages

    assert report["config"] == to_dict(cfg)
    assert report["x64"] is True
    assert set(report["sweeps"]) == set(AXES)
    for axis in AXES:
        rows = report["sweeps"][axis]
        n_values = 2 if axis == "omega_tau" else 1
        assert len(rows) == 2 * n_values
        assert {r["estimator"] for r in rows} == {"replay", "ep"}
        for r in rows:
            assert axis in r and r["size"] == 2 * 2 + 2 * 1  # synapses of a 2-2-1 network
            if r["estimator"] == "replay":
                # Replay is the exact adjoint (Newton tolerance; measured ≤ 1e-15).
                assert r["rel_l2"] <= 1e-6
    ep = {
        r["omega_tau"]: r["cosine"] for r in report["sweeps"]["omega_tau"] if r["estimator"] == "ep"
    }
    assert ep[1.0] < ep[0.01]  # EP degrades in the dynamic regime (docs/design.md §5)
    beta = report["beta"]
    assert beta["omega_tau"] == 1.0 and len(beta["rows"]) == 2 * 3
    assert set(beta["slopes"]) == {"one_sided", "symmetric"}

    paths = write_report(report, tmp_path / "out")
    names = {p.name for p in paths}
    assert names == {"report.json", "report.md", "cosine_vs_omega_tau.png", "error_vs_beta.png"}
    for p in paths:
        assert p.exists() and p.stat().st_size > 0

    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(data["sweeps"]) == set(AXES)
    assert data["sweeps"]["omega_tau"][0]["estimator"] in ("replay", "ep")
    assert data["config"]["network"]["hidden"] == [2]

    md = (tmp_path / "out" / "report.md").read_text()
    assert "| estimator |" in md and "|---" in md
    assert "\n| replay |" in md and "\n| ep |" in md
    for axis in AXES:
        assert f"## Sweep over {axis}" in md
    assert "Fitted slopes" in md

    for name in ("cosine_vs_omega_tau.png", "error_vs_beta.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ 16. batches and sharding
def test_regime_problem_batch():
    problem, u, targets = fp.regime_problem(1.0, steps=20, seed=3)
    pb, ub, tb = fp.regime_problem(1.0, steps=20, seed=3, batch=3)
    assert ub.shape == (3, *u.shape) and tb.shape == (3, *targets.shape)
    # Example 0 is the unbatched example; the others have other inputs, the same teacher.
    np.testing.assert_array_equal(ub[0], u, strict=True)
    np.testing.assert_array_equal(tb[0], targets, strict=True)
    assert not np.allclose(ub[1], ub[0]) and not np.allclose(ub[2], ub[1])
    assert pb.dt == problem.dt
    with pytest.raises(ValueError, match="batch=0 must be a positive integer"):
        fp.regime_problem(1.0, steps=20, batch=0)


def test_shard_option_picks_the_mesh(tmp_path):
    assert jax.device_count() == 8  # tests/conftest.py
    assert ValidationConfig().batch == 1 and ValidationConfig().shard == "auto"
    assert _mesh(ValidationConfig()) is None  # one example per point: nothing to split
    assert _mesh(ValidationConfig(batch=12)) is None  # auto: 8 does not divide 12
    assert _mesh(ValidationConfig(batch=16, shard="off")) is None
    assert _mesh(ValidationConfig(batch=16)).shape["batch"] == 8
    assert _mesh(ValidationConfig(batch=8, shard="on")).shape["batch"] == 8
    with pytest.raises(fp.ConfigError, match=r"needs batch \(1\) to be a multiple of the 8"):
        run_validation(ValidationConfig(shard="on"), progress=lambda m: None)
    path = _write(tmp_path, "batch: 12\nshard: on\n")
    with pytest.raises(fp.ConfigError, match=r"cfg.yaml: shard='on' needs batch \(12\)"):
        load_validation_config(path)
    with pytest.raises(fp.ConfigError, match="shard='sometimes' is not one of"):
        load_validation_config(_write(tmp_path, "shard: sometimes\n", "bad.yaml"))
    with pytest.raises(ValueError, match="batch=0 must be a positive number"):
        ValidationConfig(batch=0)


def _rel_err(out, ref) -> float:
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])  # noqa: E731
    return float(np.linalg.norm(flat(out) - flat(ref)) / np.linalg.norm(flat(ref)))


# Norm-wise relative bounds of tests/test_sharding.py, for the same reason: each of the 8
# devices runs the per-example program on 1 row instead of 8, and XLA's CPU reductions round
# differently for different batch sizes; Replay and the jax.grad references to round-off
# (1e-14), EP-type estimators amplify it by |Q| / |Q(β) − Q(0)| (1e-10). Measured here:
# every gradient bitwise, the β-sweep errors within 7.6e-12 (absolute).
SHARD_TOL = {"replay": 1e-14, "ep_half": 1e-10}


@pytest.mark.slow  # 70 s on 2 cores; test_sharding covers the sharded estimators
def test_sharded_sweep_point_matches_the_unsharded_one():
    cfg = ValidationConfig(
        network=fp.NetworkSpec(hidden=(2,)), steps=40, betas=(1e-2, 1e-3), batch=8
    )
    mesh = _mesh(cfg)
    names = tuple(SHARD_TOL)
    sharded = _gradients(cfg, 1.0, names, mesh)
    single = _gradients(cfg, 1.0, names, None)
    for name, tol in SHARD_TOL.items():
        (g_s, ref_s, _), (g_1, ref_1, _) = sharded[name], single[name]
        assert np.any(np.concatenate([np.ravel(x) for x in jax.tree.leaves(g_1)]) != 0)
        assert _rel_err(g_s, g_1) <= tol, name
        assert _rel_err(ref_s, ref_1) <= 1e-14, name  # Autodiff (order 0 and ½)
        for g in jax.tree.leaves(g_s):  # computed on all 8 devices, replicated
            assert g.sharding.is_fully_replicated and len(g.devices()) == 8
    beta_s = beta_sweep(cfg, mesh=mesh)
    beta_1 = beta_sweep(cfg)
    for r_s, r_1 in zip(beta_s["rows"], beta_1["rows"]):
        # rel_err = ‖g − L‖/‖L‖ moves by at most (‖δg‖ + ‖δL‖)/‖L‖ + rel_err·‖δL‖/‖L‖: 1e-10
        # for EP(β) plus 1e-14 for the limit L (a forward-mode derivative, no division by β).
        assert r_s["rel_err"] == pytest.approx(r_1["rel_err"], rel=0, abs=2e-10)
