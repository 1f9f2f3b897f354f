"""SB3 policies in PushT's task frame (il_toolkit.policies.frame_policy) and GAIL working there."""

import json
import numpy as np
import pytest
import torch

from il_toolkit.config.training_config import ILConfig
from il_toolkit.envs import make_env
from il_toolkit.experts import make_expert
from il_toolkit.policies import SB3Policy, load
from il_toolkit.policies.frame_policy import FrameEnv, FrameSB3Policy, FrameUnits, frame_units_for
from il_toolkit.rollout import generate_trajectories

PUSHT = "il_toolkit/PushT-v0"


@pytest.fixture(scope="module")
def pusht_demos():
    env = make_env(PUSHT)
    return generate_trajectories(make_expert(PUSHT, env), env, range(2))


def test_expert_actions_survive_the_frame_units_exactly(pusht_demos):
    units = frame_units_for(make_env(PUSHT))
    obs = np.concatenate([t.obs[:-1] for t in pusht_demos])
    acts = np.concatenate([t.acts for t in pusht_demos])
    unit = units.to_unit(obs, acts)
    assert unit.shape == acts.shape and np.abs(unit).max() <= 1.0
    np.testing.assert_allclose(units.to_env(obs, unit), acts, atol=1e-3)  # pixels: within 120 px, nothing clipped
    features = units.observe(obs)
    assert features.shape == (len(obs), 11) and np.abs(features).max() < 10  # fixed units, no data statistics


def test_a_frame_env_steps_the_raw_env_with_decoded_actions():
    env = make_env(PUSHT)
    units = frame_units_for(env)
    wrapped = FrameEnv(make_env(PUSHT), units)
    raw, _ = env.reset(seed=3)
    seen, _ = wrapped.reset(seed=3)
    np.testing.assert_allclose(seen, units.observe(raw)[0])
    unit = np.array([0.5, -0.25], np.float32)
    raw_next = env.step(units.to_env(raw, unit)[0])[0]
    np.testing.assert_allclose(wrapped.step(unit)[0], units.observe(raw_next)[0], rtol=1e-6)


def test_a_frame_policy_saves_and_acts_the_same_after_loading(tmp_path):
    from il_toolkit.policies.checkpoint import CheckpointError

    from stable_baselines3.common.policies import ActorCriticPolicy

    env = make_env(PUSHT)
    units = frame_units_for(env)
    torch.manual_seed(0)
    inner = ActorCriticPolicy(units.feature_space, units.unit_space, lambda _: 1e-3, net_arch=[16])
    policy = FrameSB3Policy(SB3Policy(inner), units.name, env.observation_space, env.action_space)
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    restored = load(policy.save(tmp_path / "frame"))
    assert isinstance(restored, FrameSB3Policy) and restored.units.name == "pusht_push"
    np.testing.assert_allclose(restored.predict(obs)[0], policy.predict(obs)[0], rtol=1e-6)
    assert env.action_space.contains(restored.predict(obs[0])[0])
    config_path = tmp_path / "frame" / "config.json"
    header = json.loads(config_path.read_text())
    header["config"]["action_scale"] = 60.0  # saved under other units than this version's frame
    config_path.write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="action scale 60.0"):
        load(tmp_path / "frame")


def test_a_frame_without_fixed_units_is_refused():
    env = make_env(PUSHT)
    with pytest.raises(ValueError, match="no fixed units for SB3 policies"):
        FrameUnits.for_env("pusht_block", env.observation_space, env.action_space)


def test_gail_on_pusht_works_in_the_frame_and_starts_from_either_kind_of_policy(tmp_path, pusht_demos):
    from il_toolkit.train.il.gail import GAIL

    config = ILConfig.gail(total_timesteps=256, ppo_n_steps=128, gail_n_envs=1, gail_demo_batch_size=64,
                           gail_disc_hidden_dim=16, gail_disc_updates=1, gail_bc_warm_start_epochs=2, eval_episodes=1,
                           output_dir=str(tmp_path / "gail"), use_wandb=False)
    gail = GAIL(PUSHT, config, progress=False)
    assert gail.venv.observation_space.shape == (11,) and isinstance(gail.policy, FrameSB3Policy)
    results = gail.train(trajectories=pusht_demos)
    assert isinstance(load(results["policy_path"]), FrameSB3Policy)
    again = GAIL(PUSHT, config.replace(output_dir=str(tmp_path / "again")), policy=gail.policy, progress=False)
    assert again.distilled is None  # a frame policy is copied
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(again.gen_algo.policy.parameters()),
                               torch.nn.utils.parameters_to_vector(gail.gen_algo.policy.parameters()))
    from il_toolkit import BehavioralCloning  # GAIL -> BC: BC refines the frame policy in its own units

    bc_config = ILConfig.behavioral_cloning(bc_epochs=2, batch_size=64, output_dir=str(tmp_path / "bc"),
                                            use_wandb=False, eval_episodes=1)
    bc = BehavioralCloning(PUSHT, bc_config, policy=load(results["policy_path"]), progress=False)
    before = torch.nn.utils.parameters_to_vector(bc.module.parameters()).clone()
    refined = bc.train(trajectories=pusht_demos)
    assert isinstance(load(refined["policy_path"]), FrameSB3Policy)
    assert not torch.equal(before, torch.nn.utils.parameters_to_vector(bc.module.parameters()))
    kept = GAIL(PUSHT, config.replace(task_frame=False, output_dir=str(tmp_path / "kept")), policy=gail.policy,
                progress=False)
    assert kept.units is not None and kept.distilled is None  # a frame policy keeps its frame whatever task_frame says
    raw = GAIL(PUSHT, config.replace(task_frame=False, output_dir=str(tmp_path / "raw")), progress=False)
    assert raw.venv.observation_space.shape == (5,) and isinstance(raw.policy, SB3Policy)
    expert = make_expert(PUSHT, make_env(PUSHT))
    distilled = GAIL(PUSHT, config.replace(output_dir=str(tmp_path / "d")), policy=expert, progress=False)
    units = frame_units_for(make_env(PUSHT))
    standing_still = np.mean([np.mean(units.to_unit(t.obs[:-1], t.acts) ** 2) for t in pusht_demos])  # unit 0
    assert distilled.distilled["distill/action_mse"] < 0.5 * standing_still  # the expert's moves, in frame units


def test_ppo_fine_tunes_in_the_frame_too_and_leaves_it_when_asked(tmp_path):
    from il_toolkit.config.training_config import RLConfig
    from il_toolkit.train.online_rl.ppo_trainer import PPOTrainer

    config = RLConfig(total_timesteps=128, n_steps=64, batch_size=32, n_epochs=1, eval_episodes=1,
                      output_dir=str(tmp_path / "ppo"))
    framed = PPOTrainer(PUSHT, config=config, progress=False)
    assert framed.venv.observation_space.shape == (11,) and isinstance(framed.policy, FrameSB3Policy)
    assert isinstance(load(framed.train()["policy_path"]), FrameSB3Policy)
    raw = PPOTrainer(PUSHT, config=config.replace(task_frame=False), progress=False)
    assert raw.venv.observation_space.shape == (5,) and isinstance(raw.policy, SB3Policy)
