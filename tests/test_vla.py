"""VLAModel (il_toolkit.model.vla) and VLA BC / DAgger (il_toolkit.train.il.vla), at tiny sizes."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from il_toolkit.config.training_config import ILConfig
from il_toolkit.model.components import BatchError
from il_toolkit.model.vla import VLAModel
from il_toolkit.model.pretrained import OfflineModelError
from il_toolkit.policies import load

TINY = dict(image_size=(32, 32), hidden_size=32, llm_layers=1, n_heads=2, vision_grid=2, vision_width=8,
            head_dim=32, head_layers=1, max_text_tokens=24, image_shift=0, flow_steps=4)
TASK = "push the T block onto the target"


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def tiny_model(**overrides) -> VLAModel:
    fields = {**TINY, "state_dim": 2, "chunk_size": 4, **overrides}
    return VLAModel("builtin-small", "builtin-small", action_dim=2, **fields)


def synthetic_batches(n_batches: int = 4, batch_size: int = 16, seed: int = 0, camera: str = "top") -> list[dict]:
    """Actions are a smooth function of the state, so they can be learned."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(n_batches):
        state = rng.uniform(-1, 1, (batch_size, 1, 2)).astype(np.float32)
        images = rng.integers(0, 255, (batch_size, 1, 3, 32, 32), dtype=np.uint8)
        steps = np.arange(4, dtype=np.float32)[None, :, None] * 0.1
        actions = np.tanh(2 * state[:, :, ::-1]) + steps
        pad = np.zeros((batch_size, 4), dtype=bool)
        pad[0, 2:] = True
        batches.append({"observation.state": torch.from_numpy(state), f"observation.images.{camera}": torch.from_numpy(images),
                        "action": torch.from_numpy(actions.astype(np.float32)), "action_is_pad": torch.from_numpy(pad),
                        "task": [TASK] * batch_size})
    return batches


def env_observation(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"agent_pos": rng.uniform(0, 1, 2), "pixels": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)}


@pytest.mark.parametrize("velocity_net", ["transformer", "mlp"])
@pytest.mark.parametrize("head", ["flow", "regression"])
def test_loss_and_sampling_shapes(head, velocity_net):
    model = tiny_model(action_head=head, velocity_net=velocity_net, mlp_width=32, mlp_layers=2)
    batch = synthetic_batches(1)[0]
    model.fit_normalizer(batch["action"].numpy(), batch["observation.state"].numpy())
    loss, metrics = model.compute_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and metrics["loss"] == pytest.approx(float(loss.detach()))
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.network.llm.parameters())
    chunk = model.predict_chunk(batch)
    assert chunk.shape == (16, 4, 2) and np.isfinite(chunk).all()
    action, _ = model.predict(env_observation())
    assert action.shape == (2,)
    actions, _ = model.predict({k: np.stack([v, v]) for k, v in env_observation().items()})
    assert actions.shape == (2, 2)


def test_padded_steps_do_not_count():
    model = tiny_model(action_head="regression")
    batch = synthetic_batches(1)[0]
    model.model.eval()
    with torch.no_grad():
        base, _ = model.compute_loss(batch)
        changed = dict(batch, action=batch["action"].clone())
        changed["action"][0, 2:] += 100.0  # only padded steps change
        same, _ = model.compute_loss(changed)
    assert float(same) == pytest.approx(float(base), rel=1e-5)


def test_bc_trains_and_loss_decreases(tmp_path):
    from il_toolkit.train.il.vla import VLABehavioralCloning

    model = tiny_model(action_head="regression")
    config = ILConfig.behavioral_cloning(bc_epochs=15, learning_rate=3e-3, output_dir=str(tmp_path / "bc"), seed=0)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, dataset_name="synthetic", progress=False)
    results = trainer.train(synthetic_batches(4))
    losses = results["losses"]
    assert len(losses) == 15
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:2]), losses
    assert results["samples_per_second"] > 0
    restored = load(results["policy_path"])
    assert isinstance(restored, VLAModel) and TASK in restored.seen_instructions
    assert restored.instruction == TASK


def test_bc_train_epoch_runs_the_seeds_warm_start_loop(tmp_path):
    from il_toolkit.train.il.vla import VLABehavioralCloning

    config = ILConfig.behavioral_cloning(learning_rate=3e-3, output_dir=str(tmp_path / "bc"), seed=0)
    trainer = VLABehavioralCloning(tiny_model(action_head="regression"), config, use_wandb=False, progress=False)
    with pytest.raises(ValueError, match="needs the data"):
        trainer.train_epoch()
    losses = [trainer.train_epoch(synthetic_batches(4))["train/loss"]]
    losses += [trainer.train_epoch()["train/loss"] for _ in range(9)]
    assert losses[-1] < 0.5 * losses[0], losses
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "bc" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 11))


@pytest.mark.parametrize("velocity_net", ["transformer", "mlp"])
def test_flow_head_loss_decreases(velocity_net):
    model = tiny_model(velocity_net=velocity_net, mlp_width=64, mlp_layers=2)
    batches = synthetic_batches(2)
    model.fit_normalizer(np.concatenate([b["action"].numpy() for b in batches]),
                         np.concatenate([b["observation.state"].numpy() for b in batches]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.model.train()
    history = []
    for _ in range(40):
        for batch in batches:
            loss, _ = model.compute_loss(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(float(loss.detach()))
    assert np.mean(history[-10:]) < 0.6 * np.mean(history[:10])


@pytest.mark.parametrize("velocity_net", ["transformer", "mlp"])
def test_save_load_gives_identical_actions(tmp_path, velocity_net):
    model = tiny_model(chunk_size=4, n_action_steps=2, velocity_net=velocity_net, mlp_width=32, mlp_layers=2)
    batch = synthetic_batches(1)[0]
    model.fit_normalizer(batch["action"].numpy(), batch["observation.state"].numpy())
    model.compute_loss(batch)  # records the instruction
    path = model.save(tmp_path / "vla")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    restored = load(path)
    assert isinstance(restored, VLAModel) and restored.config == model.config
    for policy in (model, restored):
        policy.set_seed(7)
        policy.reset()
    for step in range(5):  # crosses re-planning (n_action_steps=2)
        obs = env_observation(step)
        np.testing.assert_array_equal(model.predict(obs)[0], restored.predict(obs)[0])


@pytest.mark.parametrize("flag", ["vision_model_name", "llm_model_name"])
@pytest.mark.parametrize("name", ["google/siglip-base-patch16-224", "./no/such/model_dir"])
def test_unknown_model_name_raises_offline_error(flag, name):
    with pytest.raises(OfflineModelError, match="builtin-small") as info:
        VLAModel(action_dim=2, **{flag: name}, **TINY)
    assert flag in str(info.value) and name in str(info.value)


def test_hub_ids_download_only_when_asked_and_only_safetensors(monkeypatch):
    from il_toolkit.model import pretrained

    calls = []

    class Loader:
        @staticmethod
        def from_pretrained(source, **kwargs):
            calls.append(kwargs)
            raise OSError("not cached")

    with pytest.raises(OfflineModelError, match="set IL_TOOLKIT_DOWNLOAD_MODELS=1"):
        pretrained._from_pretrained(Loader, "org/model", "vision model", "vision_model_name")
    monkeypatch.setenv("IL_TOOLKIT_DOWNLOAD_MODELS", "1")
    with pytest.raises(OfflineModelError, match="downloads are on"):
        pretrained._from_pretrained(Loader, "org/model", "vision model", "vision_model_name")
    assert calls == [{"local_files_only": True},  # offline
                     {"local_files_only": True}, {"local_files_only": False, "use_safetensors": True}]  # cache, then hub


def test_the_mlp_velocity_net_is_the_flow_familys_and_unknown_nets_are_refused():
    from il_toolkit.model.mlp_velocity import MLPVelocityNet

    from il_toolkit.model.transformer import ActionDecoder
    from il_toolkit.model.vla import VLAConfig

    assert isinstance(tiny_model(velocity_net="mlp").network.head, MLPVelocityNet)
    assert VLAConfig(action_dim=2, cameras=(), state_dim=5).velocity_net == "mlp"  # no camera: the MLP
    assert isinstance(tiny_model().network.head, ActionDecoder)  # cameras: the transformer
    saved = {k: v for k, v in VLAConfig(action_dim=2, cameras=(), state_dim=5).to_json().items() if k != "velocity_net"}
    assert VLAConfig.from_json(saved).velocity_net == "transformer"  # saved before the option
    with pytest.raises(ValueError, match="velocity_net must be one of"):
        tiny_model(velocity_net="unet")


def test_camera_mismatch_is_a_clear_error():
    model = tiny_model()
    batch = synthetic_batches(1, camera="wrist")[0]
    with pytest.raises(BatchError, match=r"cameras \['wrist'\].*cameras \['top'\].*VLAModel\(cameras=\('wrist',\)"):
        model.compute_loss(batch)


def test_multi_camera_model_reads_every_camera():
    model = tiny_model(cameras=("left", "right"))
    batch = synthetic_batches(1, camera="left")[0]
    batch["observation.images.right"] = batch["observation.images.left"].flip(-1)
    loss, _ = model.compute_loss(batch)
    assert torch.isfinite(loss)
    obs = {"agent_pos": np.zeros(2), "pixels": {"left": np.zeros((32, 32, 3), np.uint8), "right": np.zeros((32, 32, 3), np.uint8)}}
    assert model.predict(obs)[0].shape == (2,)


def test_unseen_instruction_still_acts_and_is_logged(caplog):
    model = tiny_model()
    model.compute_loss(synthetic_batches(1)[0])
    obs = env_observation()
    seen, _ = model.predict(obs)
    with caplog.at_level(logging.WARNING, logger="il_toolkit.model.vla"):
        model.set_instruction("stack the blue cube on the red one")
        model.reset()
        unseen, _ = model.predict(obs)
    assert unseen.shape == seen.shape and np.isfinite(unseen).all()
    assert "never saw in training" in caplog.text and "stack the blue cube" in caplog.text


def test_instruction_changes_the_plan():
    model = tiny_model()
    obs = env_observation()
    a = model.predict_chunk({k: v[None] for k, v in obs.items()} | {}, instruction="push the T block")
    model.set_seed(0)
    b = model.predict_chunk({k: v[None] for k, v in obs.items()}, instruction="open the drawer")
    assert not np.allclose(a, b)


def _save_tiny_hf_models(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast, SiglipVisionConfig, SiglipVisionModel

    vision_dir, llm_dir = tmp_path / "siglip-tiny", tmp_path / "llama-tiny"
    SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                         image_size=32, patch_size=8)).save_pretrained(vision_dir)
    words = ["<unk>", "<pad>", "</s>"] + sorted(set(TASK.lower().split()))
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>").save_pretrained(llm_dir)
    LlamaModel(LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2)).save_pretrained(llm_dir)
    return vision_dir, llm_dir


def test_local_pretrained_directories_load_offline_and_roundtrip(tmp_path):
    vision_dir, llm_dir = _save_tiny_hf_models(tmp_path)
    model = VLAModel(vision_model_name=str(vision_dir), llm_model_name=str(llm_dir), action_dim=2, state_dim=2,
                     chunk_size=4, **{**TINY, "hidden_size": 32})
    batch = synthetic_batches(1)[0]
    loss, _ = model.compute_loss(batch)
    assert torch.isfinite(loss)
    path = model.save(tmp_path / "vla-hf")
    restored = load(path)
    for policy in (model, restored):
        policy.set_seed(1)
        policy.reset()
    np.testing.assert_allclose(model.predict(env_observation())[0], restored.predict(env_observation())[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["dagger", "hg_dagger"])
def test_vla_dagger_round_on_pusht_state(tmp_path, variant):
    """One DAgger round with a state-only VLA learner (no camera) on PushT: the shared DAgger
    machinery rolls out, labels with the expert, aggregates and retrains through VLA BC; HG-DAgger's
    simulated person gates it the same way."""
    from il_toolkit.envs import make_env
    from il_toolkit.train.il.dagger import VLADAgger

    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=60)
    model = VLAModel(action_dim=2, observation_space=env.observation_space, action_space=env.action_space,
                     **{**TINY, "cameras": (), "state_dim": int(env.observation_space.shape[0]), "chunk_size": 4})
    config = ILConfig.dagger(dagger_iterations=1, dagger_episodes_per_iter=1, bc_epochs=1, batch_size=32,
                             eval_episodes=1, output_dir=str(tmp_path / "dagger"), seed=0, dagger_variant=variant)
    trainer = VLADAgger(env, model, config=config, use_wandb=False, progress=False)
    assert trainer.policy.instruction == "push the T block onto the target"
    results = trainer.train()
    assert results["rounds"][0]["round/expert_labels"] > 0 and results["expert_labels"] > 0
    restored = load(results["policy_path"])
    assert isinstance(restored, VLAModel) and restored.normalizer_fitted
    assert "push the T block onto the target" in restored.seen_instructions


def test_shared_instruction_cache_matches_full_sequences():
    model = tiny_model()
    batch = synthetic_batches(1, batch_size=6)[0]
    batch["task"] = ["push", "push the T block onto the target", "push", "open", "push", "push"]
    model.model.eval()
    with torch.no_grad():
        shared = model.network.encode(batch)
        assert model.network.config.shared_text_cache
        model.network.config = model.network.config.replace(shared_text_cache=False)
        full = model.network.encode(batch)
    torch.testing.assert_close(shared, full, rtol=1e-4, atol=1e-5)


def test_sample_weights_scale_the_loss():
    model = tiny_model(action_head="regression")
    batch = synthetic_batches(1)[0]
    model.model.eval()
    with torch.no_grad():
        base, _ = model.compute_loss(batch)
        ones, _ = model.compute_loss(dict(batch, weight=torch.ones(16)))
        zeros, _ = model.compute_loss(dict(batch, weight=torch.zeros(16)))
    assert float(ones) == pytest.approx(float(base), rel=1e-6) and float(zeros) == 0.0


def test_vla_gail_round_on_pusht_state(tmp_path):
    """One adversarial round: rollouts, discriminator on the VLA's own features, advantage-weighted
    flow-matching update through the shared loop; the discriminator separates expert from VLA."""
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.rollout import generate_trajectories
    from il_toolkit.train.il.vla import TrajectoryChunkDataset, VLAGAIL

    env = make_env("il_toolkit/PushT-v0", obs_type="state", max_episode_steps=40)
    demos = generate_trajectories(make_expert("il_toolkit/PushT-v0", env=env), env, [0, 1, 2])
    expert_set = TrajectoryChunkDataset(demos, chunk_size=4, instruction="push the T block onto the target")
    model = VLAModel(action_dim=2, observation_space=env.observation_space, action_space=env.action_space,
                     **{**TINY, "cameras": (), "state_dim": int(env.observation_space.shape[0]), "chunk_size": 4})
    config = ILConfig.gail(ppo_n_steps=40, ppo_epochs=1, gail_disc_updates=10, gail_disc_lr=3e-3, batch_size=32,
                           gail_demo_batch_size=64, eval_episodes=1, output_dir=str(tmp_path / "gail"), seed=0)
    trainer = VLAGAIL(env, model, config, use_wandb=False, progress=False)
    results = trainer.train(expert_set, total_timesteps=40)
    (round_stats,) = results["rounds"]
    assert round_stats["round/steps"] == 40 and np.isfinite(round_stats["mean_reward"])
    assert round_stats["disc_acc"] > 0.75, round_stats
    assert round_stats["round/max_weight"] > 1.0  # rewards differ between steps, so do the weights
    restored = load(results["policy_path"])
    assert isinstance(restored, VLAModel) and restored.normalizer_fitted


def test_advantage_weights_favour_high_return_steps():
    from types import SimpleNamespace

    from il_toolkit.train.il.vla import VLAGAIL

    trainer = VLAGAIL.__new__(VLAGAIL)
    trainer.config = ILConfig.gail(ppo_gamma=0.0)
    trajectories = [SimpleNamespace(acts=np.zeros((3, 2))), SimpleNamespace(acts=np.zeros((2, 2)))]
    weights, mean_reward = trainer.advantage_weights(trajectories, torch.tensor([0.0, 1.0, 2.0, 0.5, 3.0]))
    assert weights.mean() == pytest.approx(1.0) and np.argmax(weights) == 4 and np.argmin(weights) == 0
    assert mean_reward == pytest.approx(1.3)


def test_model_path_chains_bc_dagger_gail(tmp_path):
    """The user guide's pipeline: BC from a dataset, then DAgger and GAIL each from the previous
    run's best/ (--model_path), the env and dataset found through the runs' run.json."""
    from il_toolkit.policies import load_config
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.il.cli import is_vla_request, run_vla

    env_kwargs = {"obs_type": "state", "max_episode_steps": 40}
    collect_dataset("il_toolkit/PushT-v0", "test/pusht-state-short-v0", 3, env_kwargs=env_kwargs, progress=False)
    assert is_vla_request("lerobot/pusht", None) and not is_vla_request("cartpole/lqr-v0", None)
    common = dict(batch_size=32, eval_episodes=1, seed=0, bc_validation_split=0.34)
    bc = run_vla("bc", ILConfig.behavioral_cloning(bc_epochs=2, output_dir=str(tmp_path / "bc"), **common),
                 env_id="il_toolkit/PushT-v0", dataset="test/pusht-state-short-v0", env_kwargs=env_kwargs,
                 progress=False, chunk_size=4)
    assert load_config(bc["policy_path"])["kind"] == "vla" and is_vla_request(None, bc["policy_path"])
    # a single-task VLA reads its state through the env's feature pipeline, like every other learner
    assert load_config(bc["policy_path"])["config"]["vla"]["features"]["frame"] == "pusht_push"
    dagger = run_vla("dagger", ILConfig.dagger(dagger_iterations=1, dagger_episodes_per_iter=1, bc_epochs=1,
                                               output_dir=str(tmp_path / "dagger"), **common),
                     model_path=bc["policy_path"], progress=False)
    assert dagger["expert_labels"] > 0
    gail = run_vla("gail", ILConfig.gail(ppo_n_steps=40, total_timesteps=40, ppo_epochs=1, gail_disc_updates=2,
                                         output_dir=str(tmp_path / "gail"), **common),
                   model_path=dagger["policy_path"], progress=False)
    assert len(gail["rounds"]) == 1 and load_config(gail["policy_path"])["kind"] == "vla"


def test_seed_import_paths_and_unknown_names():
    from il_toolkit.train.il import behavioral_cloning, dagger, gail

    assert behavioral_cloning.VLABehavioralCloning and dagger.VLADAgger and gail.VLAGAIL
    with pytest.raises(AttributeError, match="module 'il_toolkit.train.il.dagger' has no attribute 'Nope'"):
        dagger.Nope


def test_ctrl_c_during_vla_bc_keeps_the_weights_so_far(tmp_path, monkeypatch, capsys):
    from il_toolkit.train.il.vla import VLABehavioralCloning
    from il_toolkit.train import supervised

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(supervised, "run_training", interrupted)
    config = ILConfig.behavioral_cloning(bc_epochs=2, output_dir=str(tmp_path / "bc"), seed=0)
    trainer = VLABehavioralCloning(tiny_model(), config, use_wandb=False, progress=False)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(synthetic_batches(2))
    assert isinstance(load(tmp_path / "bc" / "interrupted"), VLAModel)
    assert "continue with --model_path" in capsys.readouterr().err


def test_a_vla_sees_the_state_through_the_envs_feature_pipeline(tmp_path):
    from il_toolkit.envs import make_env
    from il_toolkit.features.state import FeatureMismatchError
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset
    from il_toolkit.train.il.vla import chunk_windows

    env = make_env("il_toolkit/PushT-v0")
    features = default_state_features(env)
    collect_dataset("il_toolkit/PushT-v0", "test/pusht-vla-features-v0", 2, progress=False)
    data = ChunkedEpisodeDataset("test/pusht-vla-features-v0", "all", 4)
    model = VLAModel("builtin-small", "builtin-small", observation_space=env.observation_space,
                     action_space=env.action_space, cameras=(), state_dim=5, chunk_size=4, features=features.to_json(),
                     **{k: v for k, v in TINY.items() if k != "image_size"})
    assert model.network.state_proj.in_features == features.n_features == 11
    chunks, states = chunk_windows(data, 4)
    assert chunks.shape == (len(states), 4, 2) and states.shape[1] == 5
    model.fit_normalizer(chunks, states)
    encoded = features.encode_actions(states, chunks)  # pusher targets relative to the pusher, in the T's frame
    scale = model.network.normalizer.action_scale.numpy()
    assert np.all(scale <= np.abs(encoded).max(axis=(0, 1)) + 1e-6)  # fitted on the encoded chunks, not board pixels
    batch = data[0]
    batch = {k: (torch.as_tensor(v)[None] if k != "task" else [v]) for k, v in batch.items() if not k.endswith("index")}
    loss, _ = model.compute_loss(batch)
    assert torch.isfinite(loss)
    obs, _ = env.reset(seed=0)
    action = model.predict(obs)[0]
    assert action.shape == (2,) and env.action_space.contains(action.astype(env.action_space.dtype))
    restored = load(model.save(tmp_path / "vla"))
    assert restored.network.features == model.network.features
    with pytest.raises(FeatureMismatchError, match="5-entry state"):
        VLAModel("builtin-small", "builtin-small", action_dim=2, cameras=(), state_dim=4, features=features.to_json(),
                 **{k: v for k, v in TINY.items() if k != "image_size"})
    with pytest.raises(ValueError, match="multi-task VLA"):
        VLAModel("builtin-small", "builtin-small", action_dim=2, cameras=(), state_dim=5, features=features.to_json(),
                 task_slots={"a": {"state": [0, 5], "action": [0, 2]}}, **{k: v for k, v in TINY.items() if k != "image_size"})
