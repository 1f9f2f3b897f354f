"""Sampling shortcuts of the flow velocity nets (cached time sinusoids, GELUs outside oneDNN) change no result."""

from __future__ import annotations

import contextlib
import threading

import pytest
import torch

from il_toolkit.model import encoders, mlp_velocity
from il_toolkit.model.encoders import SinusoidalTimeEmbedding
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

STATE_KEYS = [key for key in TRAINER_REGISTRY.keys() if not TRAINER_REGISTRY.get(key).requires_depth]


def _trainer(key: str, velocity_net: str = "mlp", **fields):
    torch.manual_seed(0)
    spec = FlowModelSpec(action_dim=2, horizon=4, n_obs_steps=2, state_dim=3, d_model=32, n_heads=2, embedder_layers=1,
                         decoder_layers=1, codebook_size=4, n_experts=2, mi_dim=16, velocity_net=velocity_net,
                         mlp_width=64, **fields)
    cls = TRAINER_REGISTRY.get(key)
    models = cls.build_models(spec)
    return cls(models, cls.build_optimizers(models, lr=1e-2), None, "cpu")


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"observation.state": torch.randn(5, 2, 3, generator=g), "action": torch.randn(5, 4, 2, generator=g)}


def _sample(trainer, n_steps: int, solver: str, **options) -> torch.Tensor:
    noise = torch.randn(5, 4, 2, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        return trainer.sample_actions(_batch(), n_steps=n_steps, solver=solver, noise=noise,
                                      generator=torch.Generator().manual_seed(2), **options)


def _without_shortcuts(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(encoders, "one_value", lambda values: False)
    patch.setattr(mlp_velocity, "native_elementwise", contextlib.nullcontext)


@pytest.mark.parametrize("key", STATE_KEYS)
@pytest.mark.parametrize("shortcut_steps", [0, 8])
@pytest.mark.parametrize("velocity_net, time_embedding", [("mlp", "sinusoids"), ("mlp", "sinusoids_mlp"),
                                                          ("transformer", "sinusoids")])
def test_sampling_gives_the_chunks_it_gave_without_the_shortcuts(key: str, shortcut_steps: int, velocity_net: str,
                                                                 time_embedding: str, monkeypatch) -> None:
    trainer = _trainer(key, velocity_net, shortcut_steps=shortcut_steps, mlp_time_embedding=time_embedding)
    options = {"guidance_scale": 2.0} if key.startswith("cfg_") else {}
    fast = {(n, solver): _sample(trainer, n, solver, **options) for n in (1, 2) for solver in ("euler", "rk4")}
    with monkeypatch.context() as patch:
        _without_shortcuts(patch)
        for (n, solver), chunk in fast.items():
            torch.testing.assert_close(chunk, _sample(trainer, n, solver, **options), rtol=1e-5, atol=1e-5)


def test_sampling_follows_the_weights_through_training_and_loading() -> None:
    trainer = _trainer("naive_flow_matching_policy_trainer")
    before = _sample(trainer, 2, "euler")
    trainer.train_step(_batch(), epoch=0, total_epochs=1, iterations=0)  # the fused AdamW leaves no version count
    trained = _sample(trainer, 2, "euler")
    assert not torch.allclose(before, trained)
    other = _trainer("naive_flow_matching_policy_trainer")
    torch.testing.assert_close(_sample(other, 2, "euler"), before)
    other.models.load_state_dict(trainer.models.state_dict())
    torch.testing.assert_close(_sample(other, 2, "euler"), trained)


def test_sinusoids_are_cached_only_for_a_time_shared_by_the_batch_and_stay_bounded() -> None:
    embedding = SinusoidalTimeEmbedding(8)
    with torch.no_grad():
        varied = torch.tensor([0.1, 0.2, 0.3])
        embedding(varied)
        assert not embedding._cached
        embedding(torch.zeros(0))
        assert not embedding._cached
        shared = embedding(torch.full((3,), 0.5))
        assert list(embedding._cached) == [(0.5, torch.device("cpu"))]
        for i in range(600):
            embedding(torch.full((1,), i / 600))
    assert 0 < len(embedding._cached) <= SinusoidalTimeEmbedding._MAX_CACHED
    torch.testing.assert_close(shared, embedding(torch.full((3,), 0.5)))  # grad on: computed afresh


def test_an_empty_batch_samples_nothing() -> None:
    net = mlp_velocity.MLPVelocityNet(2, 4, 8, width=16).eval()
    with torch.no_grad():
        assert net(torch.randn(0, 4, 2), torch.zeros(0), torch.randn(0, 1, 8)).shape == (0, 4, 2)


def test_sampling_puts_a_component_left_training_in_eval_mode() -> None:
    trainer = _trainer("naive_flow_matching_policy_trainer")
    trainer.models.eval()
    trainer.models["action_decoder"].train()
    _sample(trainer, 1, "euler")
    assert not any(module.training for module in trainer.models.modules())


def test_onednn_is_off_inside_and_left_as_it_was_after() -> None:
    enabled = torch.backends.mkldnn.enabled
    with torch.no_grad():
        mlp_velocity.MLPVelocityNet(2, 4, 8, width=16).eval()(torch.randn(1, 4, 2), torch.zeros(1), torch.randn(1, 1, 8))
    with pytest.raises(RuntimeError), mlp_velocity.native_elementwise():
        assert not torch.backends.mkldnn.enabled
        raise RuntimeError("inside")
    assert torch.backends.mkldnn.enabled == enabled


def test_overlapping_blocks_on_two_threads_leave_onednn_as_it_was() -> None:
    enabled = torch.backends.mkldnn.enabled
    first_inside, second_inside = threading.Event(), threading.Event()

    def first() -> None:  # enters first and leaves first, while the second block is still inside
        with mlp_velocity.native_elementwise():
            first_inside.set()
            second_inside.wait(timeout=10)

    thread = threading.Thread(target=first)
    thread.start()
    first_inside.wait(timeout=10)
    with mlp_velocity.native_elementwise():
        second_inside.set()
        thread.join()
        assert not torch.backends.mkldnn.enabled  # the first has left; this block is still inside
    assert torch.backends.mkldnn.enabled == enabled


def test_the_time_goes_through_the_mlp_unless_the_spec_asks_for_plain_sinusoids() -> None:
    learned = _trainer("naive_flow_matching_policy_trainer").models["action_decoder"]
    assert learned.time.mlp is not None
    plain = _trainer("naive_flow_matching_policy_trainer", mlp_time_embedding="sinusoids").models["action_decoder"]
    assert plain.time.mlp is None and not list(plain.time.parameters())
    with torch.no_grad():  # the cached sinusoids are handed out as a copy
        first = plain.time(torch.full((2,), 0.25))
        first.zero_()
        assert plain.time(torch.full((2,), 0.25)).abs().sum() > 0
    with pytest.raises(ValueError, match="mlp_time_embedding must be one of"):
        FlowModelSpec(action_dim=2, state_dim=3, mlp_time_embedding="mlp")


def test_a_spec_saved_before_the_time_embedding_option_keeps_its_time_mlp() -> None:
    saved = FlowModelSpec(action_dim=2, state_dim=3, velocity_net="mlp", mlp_time_embedding="sinusoids").to_json()
    del saved["mlp_time_embedding"]
    assert FlowModelSpec.from_json(saved).mlp_time_embedding == "sinusoids_mlp"
    assert FlowModelSpec.from_json({**saved, "mlp_time_embedding": "sinusoids"}).mlp_time_embedding == "sinusoids"


def test_the_mixtures_experts_are_as_wide_as_the_spec_says() -> None:
    assert FlowModelSpec(action_dim=2, state_dim=3, mlp_width=256, n_experts=4).mlp_expert_width == 128
    assert FlowModelSpec(action_dim=2, state_dim=3, mlp_width=256, n_experts=2).mlp_expert_width == 184
    assert FlowModelSpec(action_dim=2, state_dim=3, mlp_width=256, n_experts=1).mlp_expert_width == 256
    decoder = _trainer("variational_flow_matching_policy_trainer", mlp_expert_width=24).models["action_decoder"]
    widths = {expert.net[0].out_features for expert in decoder.experts}
    assert widths == {24}
    assert _trainer("naive_flow_matching_policy_trainer", mlp_expert_width=24).models["action_decoder"].net[0].out_features == 64
    with pytest.raises(ValueError, match="mlp_expert_width must be >= 0"):
        FlowModelSpec(action_dim=2, state_dim=3, mlp_expert_width=-1)


def test_a_spec_saved_before_the_expert_width_option_keeps_experts_as_wide_as_the_net() -> None:
    saved = FlowModelSpec(action_dim=2, state_dim=3, velocity_net="mlp", mlp_width=64, n_experts=4).to_json()
    assert saved["mlp_expert_width"] == 32
    del saved["mlp_expert_width"]
    assert FlowModelSpec.from_json(saved).mlp_expert_width == 64
    assert FlowModelSpec.from_json({**saved, "mlp_expert_width": 40}).mlp_expert_width == 40
