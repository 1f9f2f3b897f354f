"""Bad input gets a clear error: observations a policy was not trained on, datasets whose values
cannot come from the env."""

from __future__ import annotations

import numpy as np
import pytest

from il_toolkit.envs import make_env
from il_toolkit.policies.mlp import MLPPolicy
from il_toolkit.policies.spaces import ObservationError
from il_toolkit.train.datasets.minari_io import DatasetError, episode_buffer, trajectories_from, write_progress


def test_a_policy_refuses_observations_of_another_shape_or_with_nan():
    env = make_env("il_toolkit/PushT-v0")
    policy = MLPPolicy(env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    assert policy.predict(obs)[0].shape == (2,)
    assert policy.predict(np.stack([obs, obs]))[0].shape == (2, 2)
    with pytest.raises(ObservationError, match=r"shape \(5,\), got \(6,\)"):
        policy.predict(np.zeros(6))
    with pytest.raises(ObservationError, match=r"got \(96, 96, 3\)"):
        policy.predict(np.zeros((96, 96, 3)))
    with pytest.raises(ObservationError, match="NaN"):
        policy.predict(np.full(5, np.nan))


def test_a_flow_policy_refuses_them_too():
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    env = make_env("il_toolkit/PushT-v0")
    policy = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", env.observation_space, env.action_space,
                                       horizon=1, n_obs_steps=1)
    with pytest.raises(ObservationError, match="NaN"):
        policy.predict(np.full(5, np.nan))
    with pytest.raises(ObservationError, match=r"got \(6,\)"):
        policy.predict(np.zeros(6))


def _write(tmp_path, env, observations, actions):
    buffer = episode_buffer(list(observations), list(actions), [0.0] * len(actions), False, 0)
    return write_progress(tmp_path / "data", env, [buffer], {"dataset_id": "tests/bad-v0"})


def test_a_dataset_with_values_the_env_cannot_produce_is_refused(tmp_path):
    env = make_env("CartPole-v1")
    obs = np.zeros((4, 4), dtype=np.float32)
    fine = _write(tmp_path / "fine", env, obs, [0, 1, 1])
    assert len(trajectories_from(fine, "fine", env)) == 1
    obs[2, 0] = 3e30
    with pytest.raises(DatasetError, match=r"3e\+30 at step 2, entry 0, outside that entry's bounds \[-4\.8, 4\.8\]"):
        trajectories_from(_write(tmp_path / "huge", env, obs, [0, 1, 1]), "huge", env)
    with pytest.raises(DatasetError, match=r"hold 7, which is not an action of Discrete\(2\)"):
        trajectories_from(_write(tmp_path / "action", env, np.zeros((4, 4), np.float32), [0, 7, 1]), "action", env)
    pusht = make_env("il_toolkit/PushT-v0")
    nan_obs = np.zeros((3, 5))
    nan_obs[1, 2] = np.nan
    with pytest.raises(DatasetError, match="non-finite observations"):
        trajectories_from(_write(tmp_path / "nan", pusht, nan_obs, [[1.0, 1.0], [1.0, 1.0]]), "nan", pusht)


def test_a_second_run_into_one_output_dir_is_refused_unless_asked(tmp_path, capsys):
    import json

    from il_toolkit.cli import main

    flags = ["train", "bc", "--env", "CartPole-v1", "--num_expert_episodes", "2", "--bc_epochs", "1", "--eval_episodes",
             "1", "--no_wandb", "--no_progress", "--output_dir", str(tmp_path / "run")]
    assert main(flags) == 0
    first = (tmp_path / "run" / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert "already holds a bc run" in err and "pass --overwrite" in err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == first  # nothing of the first run was touched
    assert main(flags + ["--overwrite"]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == len(set(steps))  # one run's records, not two
    capsys.readouterr()
    gail_into_bc = ["train", "gail", "--env", "CartPole-v1", "--output_dir", str(tmp_path / "run")]
    assert main(gail_into_bc) == 2 and "already holds a bc run" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(flags[:-1] + [str(tmp_path / "file")]) == 2 and "is a file" in capsys.readouterr().err


def test_command_line_values_are_checked_before_any_work(tmp_path, capsys):
    from il_toolkit.cli import main

    for argv, message in (
        (["eval", "--policy", "x", "--env", "PushT-v0", "--episodes", "0"], "--episodes: must be at least 1"),
        (["collect", "--env", "PushT-v0", "--episodes", "2", "--dataset-id", "tests/neg-v0", "--seed", "-5"],
         "--seed: must be 0 or more"),
        (["collect", "--env", "PushT-v0", "--episodes", "2", "--dataset-id", "tests/ne-v0", "--num-envs", "0"],
         "--num-envs: must be at least 1"),
        (["eval", "--policy", "x", "--env", "PushT-v0", "--num-envs", "0"], "--num-envs: must be at least 1"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err
    assert main(["collect", "--env", "CartPole-v1", "--expert", "pusht", "--episodes", "1", "--dataset-id",
                 "tests/mismatch-v0", "--no-progress"]) == 2
    assert "experts for 'il_toolkit/CartPole-v1': cartpole_lqr" in capsys.readouterr().err
    assert main(["collect", "--env", "PushT-v0", "--env-kwarg", "obs_type=foo", "--episodes", "1", "--dataset-id",
                 "tests/kwarg-v0", "--no-progress"]) == 2
    assert "refused the env arguments {'obs_type': 'foo'}" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    assert main(["eval", "--policy", "x", "--env", "PushT-v0", "--output", str(tmp_path / "out")]) == 2
    assert "is a directory; give a file name" in capsys.readouterr().err


def test_a_setting_changed_after_construction_and_an_edited_checkpoint_get_clear_errors(tmp_path):
    import json

    from il_toolkit.config.training_config import ConfigError, ILConfig
    from il_toolkit.policies import CheckpointError, load
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    config = ILConfig.behavioral_cloning(output_dir=str(tmp_path / "bc"), use_wandb=False)
    trainer = BehavioralCloning("CartPole-v1", config, progress=False)
    config.batch_size = 0
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        trainer.train()
    env = make_env("il_toolkit/PushT-v0")
    path = MLPPolicy(env.observation_space, env.action_space).save(tmp_path / "policy")
    header = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**header, "kind": "flow_matching"}))
    with pytest.raises(CheckpointError, match="says it holds a 'flow_matching' policy"):
        load(path)


def test_ctrl_c_during_bc_keeps_the_weights_so_far(tmp_path, monkeypatch, capsys):
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.policies import load
    from il_toolkit.train.il.behavioral_cloning import BehavioralCloning

    def interrupted_fit(self, *args, **kwargs):
        self._normalizer_fitted = True  # an epoch or more went by
        raise KeyboardInterrupt

    monkeypatch.setattr(BehavioralCloning, "fit", interrupted_fit)
    config = ILConfig.behavioral_cloning(output_dir=str(tmp_path / "bc"), use_wandb=False, policy_type="mlp",
                                         num_expert_episodes=1)
    with pytest.raises(KeyboardInterrupt):
        BehavioralCloning("il_toolkit/PushT-v0", config, progress=False).train()
    assert load(tmp_path / "bc" / "interrupted").action_space.shape == (2,)
    assert "continue with --model_path" in capsys.readouterr().err
    from il_toolkit.cli import main  # the command line: the same message, no traceback, exit code 130

    assert main(["train", "bc", "--env", "PushT-v0", "--policy_type", "mlp", "--num_expert_episodes", "1", "--no_wandb",
                 "--no_progress", "--output_dir", str(tmp_path / "bc_cli")]) == 130
    err = capsys.readouterr().err
    assert "continue with --model_path" in err and "il-toolkit train bc: interrupted" in err and "Traceback" not in err


def test_ctrl_c_during_gail_keeps_the_generator_so_far(tmp_path, monkeypatch, capsys, cartpole_demos):
    from il_toolkit import GAIL, ILConfig
    from il_toolkit.policies import load

    def interrupted_fit(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(GAIL, "_fit", interrupted_fit)
    config = ILConfig.gail(output_dir=str(tmp_path / "gail"), use_wandb=False, ppo_n_steps=64)
    with pytest.raises(KeyboardInterrupt):
        GAIL("CartPole-v1", config, progress=False).train(trajectories=cartpole_demos, total_timesteps=64)
    assert load(tmp_path / "gail" / "interrupted").action_space.n == 2
    assert "continue with --model_path" in capsys.readouterr().err


def test_methods_run_with_a_default_config_write_to_their_own_directories():
    """Two methods given the same bare ILConfig() (as the user guide's Python examples read) never
    write into one directory; the user's config is not changed."""
    from il_toolkit import DAgger, GAIL, BehavioralCloning, ILConfig

    config = ILConfig(use_wandb=False)
    dirs = {type(t).__name__: t.config.output_dir for t in (
        BehavioralCloning("CartPole-v1", config, progress=False), DAgger("CartPole-v1", config=config, progress=False),
        GAIL("CartPole-v1", config, progress=False))}
    assert dirs == {"BehavioralCloning": "./output/bc", "DAgger": "./output/dagger", "GAIL": "./output/gail"}
    assert config.output_dir == "./output/il"
    chosen = ILConfig(use_wandb=False, output_dir="runs/mine")
    assert BehavioralCloning("CartPole-v1", chosen, progress=False).config.output_dir == "runs/mine"


def _tiny_vla(env):
    from il_toolkit.model.vla import VLAModel

    return VLAModel("builtin-small", "builtin-small", action_dim=2, state_dim=2, chunk_size=4, hidden_size=32,
                    llm_layers=1, n_heads=2, vision_grid=2, vision_width=8, head_dim=32, head_layers=1,
                    max_text_tokens=24, image_shift=0, flow_steps=2, observation_space=env.observation_space,
                    action_space=env.action_space)


def test_a_vla_and_an_sb3_policy_refuse_observations_of_another_shape_or_with_nan():
    from stable_baselines3 import PPO

    from il_toolkit.policies import SB3Policy

    pixels = make_env("il_toolkit/PushT-v0", obs_type="pixels_agent_pos")
    vla = _tiny_vla(pixels)
    obs, _ = pixels.reset(seed=0)
    vla.predict(obs)
    with pytest.raises(ObservationError, match=r"shape \(96, 96, 3\), got \(64, 64, 3\)"):
        vla.predict({**obs, "pixels": np.zeros((64, 64, 3), np.uint8)})
    with pytest.raises(ObservationError, match="NaN"):
        vla.predict({**obs, "agent_pos": np.full(2, np.nan)})
    sb3 = SB3Policy.from_model(PPO("MlpPolicy", make_env("CartPole-v1"), n_steps=16, batch_size=16, device="cpu"))
    with pytest.raises(ObservationError, match=r"got \(6,\)"):
        sb3.predict(np.zeros(6))
    with pytest.raises(ObservationError, match="NaN"):
        sb3.predict(np.full(4, np.nan))


def test_a_pixel_starting_policy_for_ppo_on_state_is_refused_before_distilling(tmp_path, monkeypatch):
    from il_toolkit import RLConfig
    from il_toolkit.policies import SpaceMismatchError
    from il_toolkit.train.online_rl import ppo_trainer

    vla = _tiny_vla(make_env("il_toolkit/PushT-v0", obs_type="pixels_agent_pos"))
    monkeypatch.setattr(ppo_trainer, "distill", lambda *a, **k: pytest.fail("distilled before checking spaces"))
    config = RLConfig(total_timesteps=32, n_steps=32, batch_size=16, n_epochs=1, eval_episodes=1, n_envs=1,
                      output_dir=str(tmp_path), use_wandb=False)
    with pytest.raises(SpaceMismatchError, match="does not match env observation space Box\\(5,\\)"):
        ppo_trainer.PPOTrainer(make_env("il_toolkit/PushT-v0"), policy=vla, config=config, progress=False)


def test_an_earlier_run_that_never_finished_is_called_interrupted_not_complete(tmp_path, capsys):
    """A bc run killed before it saved best/ holds run.json and metrics.jsonl only: say so, not "best/"."""
    import json

    from il_toolkit.cli import main
    from il_toolkit.experts import make_expert
    from il_toolkit.train.il.common import RunExistsError, claim_output_dir

    run = tmp_path / "killed"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"algorithm": "bc"}))
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    flags = ["train", "bc", "--env", "CartPole-v1", "--num_expert_episodes", "1", "--bc_epochs", "1", "--eval_episodes",
             "1", "--no_wandb", "--no_progress", "--output_dir", str(run)]
    assert main(flags) == 2
    err = capsys.readouterr().err
    assert f"{run} holds a bc run that was interrupted before it finished (no best/) and cannot be resumed; pass " \
           "--overwrite (overwrite=True) to start again, or give a new --output_dir" in err
    assert "already holds" not in err and (run / "metrics.jsonl").read_text() == '{"step": 1}\n'
    (run / "run.json").write_text(json.dumps({"algorithm": "dagger"}))
    with pytest.raises(RunExistsError, match="holds a dagger run that has not finished \\(no best/ yet\\): rerun the "
                                             "train dagger command that started it to resume it, or pass --overwrite"):
        claim_output_dir(run, "bc", overwrite=False)
    make_expert("CartPole-v1").save(run / "best")
    with pytest.raises(RunExistsError, match="already holds a dagger run \\(best/, metrics.jsonl, run.json\\)"):
        claim_output_dir(run, "bc", overwrite=False)
