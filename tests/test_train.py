"""fracprop.train: configs, the step, projection, masks, checkpoints/resume, divergence, tasks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import fracprop as fp
from fracprop.experiments.checkpoints import CHECKPOINT
from fracprop.experiments.cli import main as cli_main
from fracprop.experiments.train import batch_indices, make_step, partial_mask, project
from fracprop.experiments.train_config import train_config_from_dict

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

#: A small teacher–student run (a few seconds).
SMALL = {
    "task": {"name": "teacher_student", "steps": 40, "train_examples": 8, "test_examples": 4},
    "estimator": {"name": "replay"},
    "optimizer": {"name": "adam", "learning_rate": 0.05},
    "steps": 6,
    "batch_size": 2,
    "eval_every": 3,
    "checkpoint_every": 3,
}


def small(**changes) -> fp.TrainConfig:
    data = json.loads(json.dumps(SMALL))
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k].update(v)
        else:
            data[k] = v
    return train_config_from_dict(data)


def _leaves(params):
    return [np.asarray(x) for x in jax.tree.leaves(params)]


# -- configs -------------------------------------------------------------------------------------


def write(tmp_path, data, name="cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "change, words",
    [
        ({"stepz": 3}, ["unknown key 'stepz'", "cfg.yaml"]),
        ({"steps": "many"}, ["steps='many' must be an integer", "cfg.yaml"]),
        ({"estimator": {"name": "replay", "betta": 1.0}}, ["estimator.betta", "cfg.yaml"]),
        ({"task": {"name": "teacher_student", "omega": 1.0}}, ["task.omega", "cfg.yaml"]),
        ({"task": {"name": "nope"}}, ["task.name='nope'", "teacher_student"]),
        ({"estimator": {"name": "magic"}}, ["estimator.name='magic'", "replay"]),
        ({"optimizer": {"name": "adamm"}}, ["optimizer.name='adamm'", "optax"]),
        ({"train_fraction": 0.0}, ["train_fraction=0.0"]),
        ({"constraints": {"g_min": 1.0, "g_max": 0.5}}, ["g_min < g_max"]),
    ],
)
def test_config_errors_name_the_key_and_file(tmp_path, change, words):
    data = json.loads(json.dumps(SMALL))
    data.update(change)
    path = write(tmp_path, data)
    with pytest.raises(fp.ConfigError) as err:
        fp.load_train_config(path)
    for w in words:
        assert w in str(err.value)


def test_config_missing_required_field(tmp_path):
    data = {k: v for k, v in SMALL.items() if k != "estimator"}
    with pytest.raises(fp.ConfigError, match="missing required key 'estimator'.*"):
        fp.load_train_config(write(tmp_path, data))
    with pytest.raises(fp.ConfigError, match="missing required key 'task'"):
        fp.load_train_config(write(tmp_path, {"estimator": {"name": "replay"}}))


def test_config_from_python():
    cfg = fp.TrainConfig(task={"name": "allostery"}, estimator=fp.EstimatorConfig("analytic"))
    assert type(cfg.task).name == "allostery" and cfg == train_config_from_dict(
        {"task": {"name": "allostery"}, "estimator": {"name": "analytic"}}
    )
    with pytest.raises(fp.ConfigError, match="task.n_nodez"):
        fp.TrainConfig(task={"name": "allostery", "n_nodez": 3}, estimator=fp.EstimatorConfig("ep"))


def test_every_committed_config_loads():
    paths = sorted(CONFIGS.glob("*.yaml"))
    train_paths = [p for p in paths if p.name != "validate.yaml"]
    assert train_paths, "no training configs committed"
    for p in train_paths:
        cfg = fp.load_train_config(p)
        assert cfg.estimator.name in type(cfg.task).estimators


def test_estimator_that_cannot_train_the_selection_fails_before_tracing():
    cfg = small(task={"trainable": ["R*", "M*"]})
    with pytest.raises(fp.ConfigError, match="Replay estimates gradients of linear-resistor"):
        fp.train(cfg)


# -- pieces of the step ---------------------------------------------------------------------


def test_projection_bounds_conductances_and_orders():
    params = {
        "g": jnp.array([-1.0, 0.5, 500.0]),
        "alpha": jnp.array([0.0, 0.5, 2.0]),
        "c": jnp.array([-3.0]),
    }
    out = project(params, fp.Constraints(g_min=1e-2, g_max=10.0, alpha_min=0.1))
    np.testing.assert_array_equal(out["g"], [1e-2, 0.5, 10.0])
    np.testing.assert_array_equal(out["alpha"], [0.1, 0.5, 1.0])
    np.testing.assert_array_equal(out["c"], [-3.0])  # not a conductance: untouched


def test_partial_mask_fraction_and_determinism():
    params = {"a": jnp.ones(200), "b": jnp.ones((3, 4))}
    m = partial_mask(params, 0.25, seed=3)
    assert float(m["a"].sum()) == 50 and float(m["b"].sum()) == 3
    again = partial_mask(params, 0.25, seed=3)
    np.testing.assert_array_equal(m["a"], again["a"])
    other = partial_mask(params, 0.25, seed=4)
    assert not np.array_equal(m["a"], other["a"])
    full = partial_mask(params, 1.0, seed=0)
    assert float(full["a"].sum()) == 200
    base = {"a": jnp.zeros(200).at[:40].set(1.0), "b": jnp.ones((3, 4))}
    sub = partial_mask(params, 0.5, seed=3, base=base)
    assert float(sub["a"].sum()) == 20 and float(sub["a"][40:].sum()) == 0


def test_batches_are_epoch_permutations_and_deterministic():
    n, b = 10, 3
    per_epoch = n // b
    seen = np.concatenate([batch_indices(0, s, n, b) for s in range(1, per_epoch + 1)])
    assert len(set(seen.tolist())) == per_epoch * b  # no repeats within an epoch
    np.testing.assert_array_equal(batch_indices(0, 5, n, b), batch_indices(0, 5, n, b))
    assert not np.array_equal(batch_indices(0, 1, n, b), batch_indices(1, 1, n, b))


def test_step_is_traced_once_and_a_shape_change_is_caught():
    import optax

    cfg = small()
    data = cfg.task.build(0)
    opt = optax.adam(0.05)
    params = data.params
    state = opt.init(params)
    mask = partial_mask(params, 1.0, 0)
    step = make_step(data.problem, fp.Replay(), opt, mask, cfg.constraints)
    u, t = data.train
    for k in range(3):
        params, state, loss, finite = step(
            params, state, u[2 * k : 2 * k + 2], t[2 * k : 2 * k + 2]
        )
        assert bool(finite)
    with pytest.raises(RuntimeError, match="traced"):
        step(params, state, u[:3], t[:3])  # a new batch shape would recompile


# -- the loop, output folders, checkpoints ---------------------------------------------------


def test_train_writes_outputs_and_improves(tmp_path):
    res = fp.train(small(steps=12), out=tmp_path / "run")
    out = tmp_path / "run"
    for name in (
        "config.yaml",
        "metrics.jsonl",
        CHECKPOINT,
        "params.eqx",
        "summary.json",
        "loss.png",
        "trajectories.png",
    ):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(13))
    assert res.summary["final_loss_ratio"] < 0.5
    assert fp.load_train_config(out / "config.yaml") == small(steps=12)
    params = eqx.tree_deserialise_leaves(out / "params.eqx", res.params)
    for a, b in zip(_leaves(params), _leaves(res.params)):
        np.testing.assert_array_equal(a, b)


def test_resume_is_bit_identical(tmp_path):
    full = fp.train(small(steps=6), out=tmp_path / "full")
    fp.train(small(steps=3), out=tmp_path / "part")
    resumed = fp.train(small(steps=6), resume=tmp_path / "part")
    for a, b in zip(_leaves(full.params), _leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
    rows_full = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    rows_res = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in rows_full]
    strip_res = [{k: v for k, v in json.loads(r).items() if k != "time_s"} for r in rows_res]
    assert strip == strip_res


def test_existing_output_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(fp.TrainingError, match="exists and is not empty"):
        fp.train(small(), out=out)
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_resume_with_another_config_or_a_truncated_checkpoint_fails_cleanly(tmp_path):
    fp.train(small(steps=3), out=tmp_path / "run")
    ckpt = tmp_path / "run" / CHECKPOINT
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(fp.TrainingError, match="different config.*seed"):
        fp.train(small(steps=6, seed=1), resume=tmp_path / "run")
    with pytest.raises(fp.TrainingError, match="different config.*task"):
        fp.train(small(steps=6, task={"perturbation": 0.2}), resume=tmp_path / "run")
    # Nothing in the folder was touched by the refused resumes.
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    ckpt.write_bytes(before[CHECKPOINT][:-40])
    with pytest.raises(fp.TrainingError, match="truncated or corrupt"):
        fp.train(small(steps=6), resume=tmp_path / "run")
    with pytest.raises(fp.TrainingError, match="no checkpoint"):
        fp.train(small(steps=6), resume=tmp_path / "nothing")


@fp.register_task
@dataclasses.dataclass(frozen=True)
class _Blowup(fp.AbstractTask):
    """g is driven from 1 towards 3; its estimator returns NaN once g passes ``limit``."""

    name: ClassVar[str] = "_blowup"
    estimators: ClassVar[tuple[str, ...]] = ("autodiff",)
    limit: float = 1.5

    def build(self, seed):
        class Problem:
            @staticmethod
            def loss(params, inputs, targets):
                return jnp.mean((params["g"] * inputs - targets) ** 2)

        def estimator(config):
            def est(problem, params, inputs, targets):
                grads = jax.grad(problem.loss)(params, inputs, targets)
                bad = params["g"] > self.limit
                return jax.tree.map(lambda g: jnp.where(bad, jnp.nan, g), grads)

            return est

        u = jnp.ones((4, 1))
        return fp.TaskData(
            problem=Problem(),
            params={"g": jnp.array(1.0)},
            train=(u, 3 * u),
            test=(u, 3 * u),
            estimator=estimator,
        )


def test_divergence_stops_keeps_last_good_checkpoint_and_names_step(tmp_path):
    cfg = train_config_from_dict(
        {
            "task": {"name": "_blowup"},
            "estimator": {"name": "autodiff"},
            "optimizer": {"name": "sgd", "learning_rate": 0.05},
            "steps": 50,
            "batch_size": 2,
            "checkpoint_every": 100,
        }
    )
    with pytest.raises(fp.TrainingDiverged) as err:
        fp.train(cfg, out=tmp_path / "run")
    msg = str(err.value)
    step = int(msg.split(":")[0].split()[-1])
    assert "'autodiff'" in msg and 1 < step < 50
    header = json.loads((tmp_path / "run" / CHECKPOINT).read_bytes().split(b"\n")[0])
    assert header["step"] == step - 1
    like = ({"g": jnp.array(0.0)}, __import__("optax").sgd(0.05).init({"g": jnp.array(0.0)}))
    _, (params, _) = fp.experiments.checkpoints.load_checkpoint(
        tmp_path / "run" / CHECKPOINT, header["config"], like
    )
    # The kept state is the one the failing step started from: finite, just past the limit.
    assert np.isfinite(float(params["g"])) and 1.5 < float(params["g"]) < 1.5 + 0.05 * 12


def test_cli_train_prints_summary_and_refuses_to_overwrite(tmp_path, capsys):
    path = write(tmp_path, SMALL)
    assert cli_main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    pairs = dict(kv.split("=", 1) for kv in line.split())
    assert float(pairs["final_loss_ratio"]) < 1
    assert cli_main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    bad = write(tmp_path, {**SMALL, "stepz": 1}, "bad.yaml")
    assert cli_main(["train", str(bad), "--quiet"]) == 2
    assert "unknown key 'stepz'" in capsys.readouterr().err


# -- the tasks' done-when figures (committed configs) ----------------------------------------------


def test_teacher_student_replay_and_autodiff_reach_one_percent_with_matching_curves():
    cfg = fp.load_train_config(CONFIGS / "teacher_student.yaml")
    replay = fp.train(cfg)
    auto = fp.train(dataclasses.replace(cfg, estimator=fp.EstimatorConfig(name="autodiff")))
    assert replay.summary["final_loss_ratio"] <= 0.01
    assert auto.summary["final_loss_ratio"] <= 0.01
    a = np.array([r["loss"] for r in replay.history if "loss" in r])
    b = np.array([r["loss"] for r in auto.history if "loss" in r])
    # Replay equals jax.grad to round-off, so both runs follow the same curve.
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.slow
def test_temporal_replay_test_loss_below_ten_percent():
    res = fp.train(fp.load_train_config(CONFIGS / "temporal.yaml"))
    assert res.summary["test_loss_ratio"] <= 0.10


def test_sharded_training_matches_single_device():
    assert jax.device_count() == 8  # tests/conftest.py: 8 fake CPU devices
    on = fp.train(small(batch_size=8, steps=3, shard="on"))
    off = fp.train(small(batch_size=8, steps=3, shard="off"))
    for a, b in zip(_leaves(on.params), _leaves(off.params)):
        # Same maths; XLA's per-device reductions round differently (see _sharding.py).
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    with pytest.raises(fp.ConfigError, match="multiple of the 8 visible devices"):
        fp.train(small(batch_size=4, shard="on"))


# -- resistive (DC) tasks -------------------------------------------------------------------


def test_allostery_reaches_one_percent_and_partial_training_masks_the_rest():
    cfg = fp.load_train_config(CONFIGS / "allostery.yaml")
    res = fp.train(cfg)
    assert res.summary["final_loss_ratio"] <= 0.01
    half = fp.train(dataclasses.replace(cfg, steps=20, train_fraction=0.25))
    data = cfg.task.build(cfg.seed)
    g0 = np.asarray(data.params["g"])
    chosen = np.asarray(partial_mask(data.params, 0.25, cfg.seed, data.problem.mask())["g"]) > 0
    changed = np.asarray(half.params["g"]) != g0
    assert chosen.sum() == round(0.25 * g0.size)
    assert not changed[~chosen].any()  # nothing outside the chosen quarter moved
    assert changed[chosen].mean() > 0.9  # and (almost) every chosen one did


def test_resistive_estimators_are_offered_by_name():
    for name in ("ep", "ep_symmetric", "ep_limit", "coupled", "analytic", "autodiff"):
        cfg = train_config_from_dict(
            {
                "task": {"name": "allostery"},
                "estimator": {"name": name},
                "steps": 2,
                "batch_size": 1,
            }
        )
        assert fp.train(cfg).summary["final_loss_ratio"] < 1.0
    with pytest.raises(fp.ConfigError, match="'replay' is not available for task 'allostery'"):
        train_config_from_dict({"task": {"name": "allostery"}, "estimator": {"name": "replay"}})


@pytest.mark.slow
def test_iris_diode_network_reaches_95_percent():
    res = fp.train(fp.load_train_config(CONFIGS / "iris.yaml"))
    assert res.summary["test_accuracy"] >= 0.95


@pytest.mark.slow
def test_digits_symmetric_ep_reaches_95_percent_within_two_points_of_autodiff():
    ep = fp.train(fp.load_train_config(CONFIGS / "digits.yaml"))
    auto = fp.train(fp.load_train_config(CONFIGS / "digits_autodiff.yaml"))
    assert ep.summary["test_accuracy"] >= 0.95
    assert abs(ep.summary["test_accuracy"] - auto.summary["test_accuracy"]) <= 0.02
