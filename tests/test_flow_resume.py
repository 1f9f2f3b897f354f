"""Flow training runs that were stopped, damaged or misconfigured: a resumed run continues as an uninterrupted one,
a damaged training state is named with its fix, and bad settings are refused before anything is built."""

from __future__ import annotations

import json

import pytest
import torch

from il_toolkit.config.training_config import ConfigError
from il_toolkit.policies import CheckpointError
from il_toolkit.train.datasets.minari_io import DatasetError
from il_toolkit.train.imitation_learning.base import FlowMatchingTrainer
from il_toolkit.train.imitation_learning.loop import train_flow_policy
from il_toolkit.train.imitation_learning.training_state import read_training_state, write_training_state
from il_toolkit.train.logging import MetricLogger

KEY = "naive_flow_matching_policy_trainer"


@pytest.fixture(scope="module")
def pusht():
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import rollout_episode

    env = make_env("il_toolkit/PushT-v0")
    expert = make_expert("il_toolkit/PushT-v0", env=env)
    return env, [rollout_episode(expert, env, seed).to_trajectory() for seed in range(3)]


def _fit(pusht, directory, **kwargs):
    env, trajectories = pusht
    options = dict(steps=12, batch_size=32, learning_rate=1e-3, seed=3, checkpoint_dir=directory, checkpoint_every=5,
                   resume=True)
    return train_flow_policy(KEY, trajectories, env.observation_space, env.action_space, **{**options, **kwargs})


def test_a_run_killed_after_a_checkpoint_ends_where_an_uninterrupted_one_does(pusht, tmp_path, monkeypatch) -> None:
    whole = _fit(pusht, tmp_path / "whole")
    original = FlowMatchingTrainer.train_step

    def killed_at_step_7(self, data, epoch, total_epochs, iterations):
        if iterations == 7:
            raise RuntimeError("killed")  # no chance to save: the last checkpoint (step 5) is what is left
        return original(self, data, epoch, total_epochs, iterations)

    monkeypatch.setattr(FlowMatchingTrainer, "train_step", killed_at_step_7)
    with pytest.raises(RuntimeError, match="killed"):
        _fit(pusht, tmp_path / "killed")
    monkeypatch.setattr(FlowMatchingTrainer, "train_step", original)
    assert json.loads((tmp_path / "killed" / "trainer_state.json").read_text())["iterations"] == 5
    resumed = _fit(pusht, tmp_path / "killed")
    for (name, x), (_, y) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_a_training_state_is_written_whole_or_not_at_all_and_a_damaged_one_names_its_fix(pusht, tmp_path) -> None:
    _fit(pusht, tmp_path / "run", steps=5)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["policy", "trainer_state.json",
                                                                    "trainer_state.safetensors"]
    tensors, meta = read_training_state(tmp_path / "run")
    assert meta["iterations"] == 5 and "rng.batches" in tensors and "rng.trainer" in tensors
    state = tmp_path / "run" / "trainer_state.safetensors"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # cut short, as by a full disk
    with pytest.raises(CheckpointError, match="is damaged .*delete .*run' to train again from step 0"):
        _fit(pusht, tmp_path / "run", steps=8)
    state.unlink()
    with pytest.raises(CheckpointError, match="is incomplete"):
        _fit(pusht, tmp_path / "run", steps=8)


def test_a_state_saved_before_the_json_was_embedded_still_resumes_from_the_json(pusht, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    _fit(pusht, tmp_path / "run", steps=5)
    state = tmp_path / "run" / "trainer_state.safetensors"
    old = {k: v for k, v in load_file(str(state)).items() if not k.startswith("rng.")}
    save_file(old, str(state))  # no metadata and no random state, as states were written before
    seen: list[int] = []
    _fit(pusht, tmp_path / "run", steps=8, log=lambda metrics, step: seen.append(step))
    assert seen == [5, 6, 7]


def test_a_policy_without_its_training_state_is_said_to_restart_from_step_0(pusht, tmp_path) -> None:
    _fit(pusht, tmp_path / "run", steps=5)
    (tmp_path / "run" / "trainer_state.json").unlink()
    (tmp_path / "run" / "trainer_state.safetensors").unlink()
    with pytest.warns(UserWarning, match="no training state to resume from: training starts again from step 0"):
        _fit(pusht, tmp_path / "run", steps=2)


def test_resuming_with_another_spec_names_the_saved_values(pusht, tmp_path) -> None:
    _fit(pusht, tmp_path / "run", steps=5, spec_fields={"horizon": 1, "n_obs_steps": 1, "velocity_net": "mlp",
                                                        "mlp_time_embedding": "sinusoids"})
    with pytest.raises(CheckpointError, match="horizon: saved 1, here 4.*train flow: --horizon 1 "
                                              "--mlp_time_embedding sinusoids\\)"):
        _fit(pusht, tmp_path / "run", steps=8, spec_fields={"horizon": 4, "n_obs_steps": 1, "velocity_net": "mlp",
                                                            "mlp_time_embedding": "sinusoids_mlp"})


def test_a_horizon_longer_than_every_episode_is_refused_before_the_model_is_built(pusht, monkeypatch) -> None:
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    env, trajectories = pusht
    longest = max(len(t.acts) for t in trajectories)
    monkeypatch.setattr(FlowMatchingPolicy, "create", lambda *a, **k: pytest.fail("built a model first"))
    with pytest.raises(DatasetError, match=f"the longest has {longest} actions.*horizon {longest + 1}"):
        train_flow_policy(KEY, trajectories, env.observation_space, env.action_space, steps=1,
                          spec_fields={"horizon": longest + 1})


def test_more_observations_than_the_chunk_holds_names_the_horizon_and_n_obs_steps(pusht) -> None:
    env, trajectories = pusht
    with pytest.raises(ConfigError, match="raise the horizon to at least 5 or lower n_obs_steps"):
        train_flow_policy(KEY, trajectories, env.observation_space, env.action_space, steps=1,
                          spec_fields={"horizon": 2, "n_obs_steps": 5})
    with pytest.raises(ConfigError, match="execute at most 3 actions of each chunk"):
        train_flow_policy(KEY, trajectories, env.observation_space, env.action_space, steps=1,
                          spec_fields={"horizon": 4, "n_obs_steps": 2}, policy_options={"n_action_steps": 5})


def test_a_run_going_on_from_a_checkpoint_logs_each_step_once(tmp_path) -> None:
    """Per-step records are logged at each step's 0-based index, epoch records at the count of steps done: going on
    from step 5, the killed run's per-step records from 5 on and epoch records after 5 are logged again."""
    killed = [{"step": step, "time_s": 10.0 * step, "loss": 1.0} for step in range(8)]
    killed[5:5] = [{"step": 5, "time_s": 45.0, "train/steps": 5}]
    killed.append({"step": 7, "time_s": 75.0, "train/steps": 7})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in killed))
    logger = MetricLogger(tmp_path, console=False)  # the resumed run's
    logger.continue_from(5)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 10  # nothing goes before the next record
    logger.log({"loss": 0.5}, 5)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], "train/steps" in r) for r in records] == [
        (0, False), (1, False), (2, False), (3, False), (4, False), (5, True), (5, False)]
    assert records[-1]["time_s"] >= 45.0  # the clock goes on from the records kept
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_killed_train_flow_run_resumes_with_one_record_per_step(tmp_path, monkeypatch) -> None:
    from il_toolkit import collect_dataset
    from il_toolkit.train.imitation_learning.cli import main

    collect_dataset("il_toolkit/PushT-v0", "tests/resume-pusht-v0", 2, progress=False, if_missing=True)
    argv = ["--dataset", "tests/resume-pusht-v0", "--steps", "40", "--checkpoint_every", "10", "--batch_size", "16",
            "--eval_episodes", "0", "--no_wandb", "--output_dir", str(tmp_path / "run")]
    original = FlowMatchingTrainer.train_step

    def killed_at_step_24(self, data, epoch, total_epochs, iterations):
        if iterations == 24:
            raise RuntimeError("killed")
        return original(self, data, epoch, total_epochs, iterations)

    monkeypatch.setattr(FlowMatchingTrainer, "train_step", killed_at_step_24)
    with pytest.raises(RuntimeError, match="killed"):
        main(argv)
    monkeypatch.undo()
    assert main(argv) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if "train/steps" not in json.loads(line)]
    assert steps == sorted(set(steps)) and steps[-1] == 39


def test_a_state_saved_before_the_expert_width_resumes_and_a_variational_one_names_the_flag(tmp_path) -> None:
    from il_toolkit.model.spec import FlowModelSpec
    from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

    for key, refused in ((KEY, False), ("variational_flow_matching_policy_trainer", True)):
        spec = FlowModelSpec(action_dim=2, state_dim=3, horizon=1, n_obs_steps=1, velocity_net="mlp", mlp_width=64)
        cls = TRAINER_REGISTRY.get(key)
        trainer = cls(cls.build_models(spec.replace(mlp_expert_width=64)), {}, None, "cpu")
        trainer.save_training_state(tmp_path / key, epoch=0, iterations=3)
        meta = json.loads((tmp_path / key / "trainer_state.json").read_text())
        del meta["spec"]["mlp_expert_width"]  # as written before the field existed: experts as wide as the net
        write_training_state(tmp_path / key, read_training_state(tmp_path / key)[0], meta)
        models = cls.build_models(spec)  # today's default: experts 64 / sqrt(4) = 32 wide
        if refused:
            with pytest.raises(CheckpointError, match="mlp_expert_width: saved 64, here 32.*--mlp_expert_width 64"):
                cls(models, {}, None, "cpu").load_training_state(tmp_path / key)
        else:
            assert cls(models, {}, None, "cpu").load_training_state(tmp_path / key)["iterations"] == 3


def test_a_state_whose_write_fails_leaves_the_last_one_whole(pusht, tmp_path, monkeypatch) -> None:
    import safetensors.torch

    _fit(pusht, tmp_path / "run", steps=5)
    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        _fit(pusht, tmp_path / "run", steps=12)
    monkeypatch.undo()
    assert read_training_state(tmp_path / "run")[1]["iterations"] == 5
    assert not list((tmp_path / "run").glob(".*.tmp"))


@pytest.mark.parametrize("flags, message", [
    (["--steps", "-5"], "argument --steps: must be 0 or more, got -5"),
    (["--batch_size", "0"], "argument --batch_size: must be at least 1, got 0"),
    (["--learning_rate", "-1"], "argument --learning_rate: must be a positive number, got -1"),
    (["--horizon", "0"], "argument --horizon: must be at least 1, got 0"),
])
def test_train_flow_refuses_impossible_numbers_when_it_reads_them(flags, message, capsys) -> None:
    from il_toolkit.train.imitation_learning.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--dataset", "pusht/none-v0", *flags])
    assert exited.value.code == 2 and message in capsys.readouterr().err



def test_files_written_atomically_get_the_permissions_a_plain_write_gives(tmp_path) -> None:
    from il_toolkit.atomic_files import write_text_atomically

    (tmp_path / "plain.txt").write_text("a")
    write_text_atomically(tmp_path / "atomic.txt", "a")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
