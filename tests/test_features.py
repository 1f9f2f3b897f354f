"""The shared feature pipeline: what an env declares, the features and action codec, and the flow
policy that sees the state through it (task frame, MLP velocity net, checkpoints old and new)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import il_toolkit  # noqa: F401  (registers the envs)
from il_toolkit.features import FeatureMismatchError, StateFeatures, state_features_for
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.policies import load as load_policy
from il_toolkit.policies.flow_policy import FlowMatchingPolicy, default_state_features
from il_toolkit.policies.mlp import MLPPolicy

torch.set_num_threads(1)
TINY = dict(d_model=32, n_heads=2, embedder_layers=1, decoder_layers=1, codebook_size=4, n_experts=2, mi_dim=16,
            mlp_width=32, mlp_layers=2)


@pytest.fixture(scope="module")
def pusht():
    env = gym.make("il_toolkit/PushT-v0")
    yield env
    env.close()


def _pusht_states(env, n: int = 6) -> np.ndarray:
    return np.stack([env.reset(seed=i)[0] for i in range(n)])


def test_pusht_declares_its_task_frame_and_a_plain_env_gets_the_identity(pusht) -> None:
    features = state_features_for(pusht)
    assert (features.frame, features.periodic_dims, features.n_features) == ("pusht_push", (4,), 11)
    plain = state_features_for(spaces.Box(-1, 1, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32))
    assert plain.is_identity and plain.n_features == 3
    states = np.random.default_rng(0).normal(size=(4, 3))
    assert np.allclose(plain.features(states), states.astype(np.float32))
    assert not state_features_for(pusht, task_frame=False).frame  # switched off: angles as sin/cos, absolute targets


def test_mlp_and_flow_see_the_same_features(pusht) -> None:
    states = _pusht_states(pusht)
    mlp = MLPPolicy(pusht.observation_space, pusht.action_space, frame="pusht_push")
    features = default_state_features(pusht)
    assert np.array_equal(mlp.flatten_obs(states), features.features(states))


def test_chunks_encode_relative_to_their_state_and_decode_back(pusht) -> None:
    features = state_features_for(pusht)
    states = _pusht_states(pusht)
    chunks = np.random.default_rng(1).uniform(0, 512, size=(len(states), 5, 2))
    encoded = features.encode_actions(states, chunks)
    assert encoded.shape == chunks.shape
    assert np.allclose(features.decode_actions(states, encoded), chunks)
    # each action of a chunk is relative to the same state: the first equals the single-action encoding
    assert np.allclose(encoded[:, 0], features.encode_actions(states, chunks[:, 0]))
    reference = StateFeatures(obs_dim=5, action_dim=2, action_reference=(0, 1))
    assert np.allclose(reference.encode_actions(states, chunks)[:, 2], chunks[:, 2] - states[:, :2])


def test_bad_pipelines_and_mismatched_states_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        StateFeatures(obs_dim=5, action_dim=2, frame="pusht_push", action_reference=(0, 1))
    with pytest.raises(ValueError, match="unknown task frame 'nope'"):
        StateFeatures(obs_dim=5, action_dim=2, frame="nope")
    with pytest.raises(ValueError, match="task frame 'pusht_push' is for 5 observation"):
        StateFeatures(obs_dim=7, action_dim=2, frame="pusht_push")
    with pytest.raises(ValueError, match="indexes outside the 3"):
        StateFeatures(obs_dim=3, action_dim=1, ignored_obs=(3,))
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        StateFeatures.from_json({"obs_dim": 3, "action_dim": 1, "colour": "red"})
    features = StateFeatures(obs_dim=5, action_dim=2, frame="pusht_push")
    with pytest.raises(FeatureMismatchError, match="built for 5 entries"):
        features.features(np.zeros((2, 4)))
    with pytest.raises(FeatureMismatchError, match="5-entry state.*the env .* has a 3-entry state"):
        features.check_fits(3, 2, "the env CartPole")


def test_velocity_net_is_sized_to_the_inputs() -> None:
    assert FlowModelSpec(action_dim=2, state_dim=5).velocity_net == "mlp"
    assert FlowModelSpec(action_dim=2, cameras=("top",)).velocity_net == "transformer"
    assert FlowModelSpec(action_dim=2, state_dim=5, velocity_net="transformer").velocity_net == "transformer"
    with pytest.raises(ValueError, match="velocity_net must be one of"):
        FlowModelSpec(action_dim=2, state_dim=5, velocity_net="cnn")
    # a spec saved before velocity_net existed was a transformer
    old = FlowModelSpec(action_dim=2, state_dim=5, velocity_net="transformer").to_json()
    del old["velocity_net"]
    assert FlowModelSpec.from_json(old).velocity_net == "transformer"


@pytest.mark.parametrize("key", ["naive_flow_matching_policy_trainer", "variational_flow_matching_policy_trainer",
                                 "cfg_vqvae_flow_matching_trainer_kot", "mutual_information_estimator_trainer"])
def test_flow_policy_with_features_round_trips(pusht, key: str, tmp_path) -> None:
    features = default_state_features(pusht)
    policy = FlowMatchingPolicy.create(key, pusht.observation_space, pusht.action_space, features=features,
                                       horizon=4, n_obs_steps=2, **TINY)
    assert policy.spec.state_dim == 11 and policy.spec.velocity_net == "mlp"
    states = _pusht_states(pusht, 3)
    trajectories = [SimpleNamespace(obs=np.concatenate([states, states]), acts=np.concatenate([states, states])[:-1, :2])]
    from il_toolkit.train.imitation_learning.loop import fit_normalizer

    data = fit_normalizer(policy, trajectories)
    assert data.chunks is not None and data.chunks.shape == (5, 4, 2)
    policy.set_seed(3)
    action, _ = policy.predict(states[0])
    assert action.shape == (2,) and np.all(np.isfinite(action))
    path = policy.save(tmp_path / "p")
    assert json.loads((path / "config.json").read_text())["config"]["features"]["frame"] == "pusht_push"
    restored = load_policy(path)
    assert restored.features == features
    for each in (policy, restored):
        each.reset()
        each.set_seed(5)
    assert np.allclose(policy.predict(states[1])[0], restored.predict(states[1])[0])


def test_flow_policy_decodes_its_chunk_in_env_units(pusht) -> None:
    """A policy whose model always outputs the encoded action 0 (pusher target = the pusher itself)
    must act at the pusher's position, wherever the T is."""
    features = default_state_features(pusht)
    policy = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", pusht.observation_space,
                                       pusht.action_space, features=features, horizon=1, n_obs_steps=1, **TINY)
    normalizer = policy.model["normalizer"]
    normalizer.action_scale.fill_(1e-6)  # every sample collapses onto the shift (0: no offset from the pusher)
    states = _pusht_states(pusht, 4)
    actions, _ = policy.predict(states)
    assert np.allclose(actions, states[:, :2], atol=1e-3)


def test_feature_pipeline_that_does_not_fit_the_env_is_named(pusht) -> None:
    features = StateFeatures(obs_dim=4, action_dim=2)
    with pytest.raises(FeatureMismatchError, match="4-entry state.*5-entry state"):
        FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", pusht.observation_space, pusht.action_space,
                                  features=features, horizon=1, n_obs_steps=1, **TINY)


def test_checkpoint_from_before_the_pipeline_still_loads(tmp_path) -> None:
    """A flow checkpoint written before features and velocity_net existed: raw state, transformer."""
    obs_space, act_space = spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
    policy = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", obs_space, act_space, horizon=2,
                                       n_obs_steps=1, velocity_net="transformer", **TINY)
    path = policy.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    del config["config"]["features"], config["config"]["spec"]["velocity_net"]
    (path / "config.json").write_text(json.dumps(config))
    restored = load_policy(path)
    assert restored.features is None and restored.spec.velocity_net == "transformer"
    obs = np.zeros(3, np.float32)
    for each in (policy, restored):
        each.set_seed(1)
    assert np.allclose(policy.predict(obs)[0], restored.predict(obs)[0])


def test_train_flow_defaults_suit_the_env(pusht) -> None:
    from il_toolkit.train.imitation_learning.cli import IMAGE_DEFAULTS, STATE_DEFAULTS, build_parser, resolve_settings

    args = build_parser().parse_args(["--dataset", "pusht/expert-v0"])
    settings = resolve_settings(args, pusht)
    assert {k: settings[k] for k in STATE_DEFAULTS} == STATE_DEFAULTS and settings["task_frame"]
    pixels = gym.make("il_toolkit/PushT-v0", obs_type="pixels_agent_pos")
    assert {k: resolve_settings(args, pixels)[k] for k in IMAGE_DEFAULTS} == IMAGE_DEFAULTS
    pixels.close()
    given = resolve_settings(build_parser().parse_args(["--steps", "7", "--horizon", "4"]), pusht)
    assert (given["steps"], given["horizon"], given["n_obs_steps"]) == (7, 4, STATE_DEFAULTS["n_obs_steps"])
    # the time MLP follows the horizon unless asked for: plain sinusoids for single actions, the MLP for chunks
    assert (settings["mlp_time_embedding"], given["mlp_time_embedding"]) == ("sinusoids", "sinusoids_mlp")
    asked = build_parser().parse_args(["--mlp_time_embedding", "sinusoids_mlp"])
    assert resolve_settings(asked, pusht)["mlp_time_embedding"] == "sinusoids_mlp"


def test_train_flow_cli_trains_in_the_task_frame_and_resumes(tmp_path, capsys) -> None:
    from il_toolkit.cli import main
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-flow-cli-v0", 3, progress=False)
    flags = ["train", "flow", "--dataset", "tests/pusht-flow-cli-v0", "--steps", "20", "--eval_episodes", "1",
             "--no_wandb", "--output_dir", str(tmp_path / "run"), "--checkpoint_every", "10"]
    assert main(flags) == 0
    config = json.loads((tmp_path / "run" / "best" / "config.json").read_text())["config"]
    assert config["features"]["frame"] == "pusht_push" and config["spec"]["velocity_net"] == "mlp"
    assert config["spec"]["mlp_time_embedding"] == "sinusoids"  # horizon 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 20
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["iterations"] == 20
    capsys.readouterr()
    assert main(flags[:5] + ["30"] + flags[6:]) == 0  # same run, a larger budget: continues from step 20
    assert json.loads((tmp_path / "run" / "checkpoint" / "trainer_state.json").read_text())["iterations"] == 30


def test_train_flow_cli_holds_out_episodes_and_keeps_the_best_epoch(tmp_path, capsys) -> None:
    from il_toolkit.cli import main
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-flow-val-v0", 4, progress=False)
    assert main(["train", "flow", "--dataset", "tests/pusht-flow-val-v0", "--steps", "12", "--batch_size", "64",
                 "--eval_episodes", "1", "--no_wandb", "--output_dir", str(tmp_path / "run"),
                 "--validation_split", "0.25", "--keep_weights", "best",
                 "--shortcut_steps", "8", "--shortcut_ema_decay", "0.95", "--ode_steps", "1"]) == 0
    saved = json.loads((tmp_path / "run" / "best" / "config.json").read_text())["config"]
    assert saved["spec"]["shortcut_steps"] == 8 and saved["spec"]["shortcut_ema_decay"] == 0.95 and saved["n_steps"] == 1
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if "val/loss" in r]
    assert epochs and all(np.isfinite(r["val/loss"]) and "epoch" in r for r in epochs)
    with pytest.raises(SystemExit, match="validation_split must be in"):
        main(["train", "flow", "--dataset", "tests/pusht-flow-val-v0", "--validation_split", "1.5",
              "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="power of two such as 8"):
        main(["train", "flow", "--dataset", "tests/pusht-flow-val-v0", "--shortcut_steps", "12",
              "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="--shortcut_ema_decay is the decay"):
        main(["train", "flow", "--dataset", "tests/pusht-flow-val-v0", "--shortcut_steps", "8",
              "--shortcut_ema_decay", "1.5", "--output_dir", str(tmp_path / "bad")])


def test_train_flow_continues_a_saved_policy_from_model_path(tmp_path, capsys) -> None:
    from il_toolkit.cli import main
    from il_toolkit.policies import load
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-flow-cli-v0", 3, progress=False, if_missing=True)
    base = ["train", "flow", "--dataset", "tests/pusht-flow-cli-v0", "--steps", "10", "--eval_episodes", "1",
            "--no_wandb", "--horizon", "4", "--n_obs_steps", "1"]
    assert main(base + ["--output_dir", str(tmp_path / "first")]) == 0
    first = load(tmp_path / "first" / "best")
    assert main(base[:9] + ["--model_path", str(tmp_path / "first" / "best"), "--output_dir", str(tmp_path / "more")]) == 0
    more = load(tmp_path / "more" / "best")
    assert more.spec == first.spec and more.trainer_key == first.trainer_key
    assert any(not torch.equal(a, b) for a, b in zip(first.model.parameters(), more.model.parameters()))
    for name, value in first.checkpoint_tensors().items():  # the normaliser the weights were fitted to is kept
        if "normalizer" in name:
            assert torch.equal(value, more.checkpoint_tensors()[name])
    with pytest.raises(SystemExit, match="flow-matching policies only"):
        from il_toolkit.policies.mlp import MLPPolicy

        env_obs, env_act = first.observation_space, first.action_space
        MLPPolicy(env_obs, env_act).save(tmp_path / "mlp")
        main(base[:9] + ["--model_path", str(tmp_path / "mlp"), "--output_dir", str(tmp_path / "x")])


def test_train_flow_reflows_a_saved_policy_and_saves_it_with_the_asked_ode_steps(tmp_path) -> None:
    from il_toolkit.cli import main
    from il_toolkit.policies import load
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset("il_toolkit/PushT-v0", "tests/pusht-flow-cli-v0", 3, progress=False, if_missing=True)
    base = ["train", "flow", "--dataset", "tests/pusht-flow-cli-v0", "--eval_episodes", "0", "--no_wandb"]
    assert main(base + ["--steps", "10", "--horizon", "4", "--n_obs_steps", "1", "--output_dir", str(tmp_path / "first")]) == 0
    teacher = tmp_path / "first" / "best"
    assert main(base + ["--model_path", str(teacher), "--reflow", "--reflow_noises", "2", "--steps", "5",
                        "--ode_steps", "2", "--output_dir", str(tmp_path / "reflow")]) == 0
    first, student = load(teacher), load(tmp_path / "reflow" / "best")
    assert student.spec == first.spec and student.n_steps == 2 and first.n_steps == 10
    assert any(not torch.equal(a, b) for a, b in zip(first.model.parameters(), student.model.parameters()))
    assert main(base + ["--model_path", str(teacher), "--reflow", "--steps", "2", "--solver", "midpoint",
                        "--output_dir", str(tmp_path / "reflow2")]) == 0
    again = load(tmp_path / "reflow2" / "best")  # unset inference settings stay the policy's own
    assert (again.n_steps, again.solver) == (10, "midpoint")
    recorded = [json.loads((tmp_path / run / "config.json").read_text()) for run in ("reflow", "reflow2")]
    assert [(c["ode_steps"], c["solver"], c["reflow_noises"]) for c in recorded] == [(2, "euler", 2), (10, "midpoint", 4)]
    with pytest.raises(SystemExit, match="give the policy's directory with --model_path"):
        main(base + ["--reflow", "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="is a setting of --reflow"):
        main(base + ["--reflow_noises", "2", "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="another --output_dir"):
        main(base + ["--model_path", str(teacher), "--reflow", "--output_dir", str(tmp_path / "first")])
    with pytest.raises(SystemExit, match="keeps the policy's own trainer"):
        main(base + ["--model_path", str(teacher), "--reflow", "--trainer", "vfp_single_expert_trainer",
                     "--output_dir", str(tmp_path / "bad")])
