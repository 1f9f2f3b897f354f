"""Flow-matching primitives, components, every registered trainer, and the chunked policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gymnasium import spaces

from il_toolkit.model import flow
from il_toolkit.model.components import BatchError
from il_toolkit.model.ot import sinkhorn_divergence
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.model.vq import VectorQuantizer
from il_toolkit.policies.spaces import ObservationError
from il_toolkit.policies import load as load_policy
from il_toolkit.policies.checkpoint import CheckpointError
from il_toolkit.policies.flow_policy import FlowMatchingPolicy
from il_toolkit.registry import UnknownKeyError
from il_toolkit.train.imitation_learning import TRAINER_REGISTRY
from il_toolkit.train.imitation_learning.mutual_information_estimator.infonce import infonce

torch.set_num_threads(1)

SEED_KEYS = {
    "vfp_single_expert_trainer",
    "vfp_single_expert_trainer_depth",
    "cfg_vqvae_flow_matching_trainer_kot",
    "naive_flow_matching_policy_trainer",
    "variational_flow_matching_policy_trainer",
    "mutual_information_estimator_trainer",
}
KEYS = TRAINER_REGISTRY.keys()
TINY = dict(d_model=32, n_heads=2, embedder_layers=1, decoder_layers=1, codebook_size=4, n_experts=2, mi_dim=16)


# -- primitives ----------------------------------------------------------------------------
def test_path_endpoints_and_velocity() -> None:
    x0, x1 = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    assert torch.allclose(flow.interpolate(x0, x1, torch.zeros(4)), x0)
    assert torch.allclose(flow.interpolate(x0, x1, torch.ones(4)), x1)
    x_t, v = flow.flow_matching_pair(x0, x1, torch.full((4,), 0.25))
    assert torch.allclose(x_t, 0.25 * x1 + 0.75 * x0)
    assert torch.allclose(v, x1 - x0)
    assert torch.allclose(flow.predicted_endpoint(x_t, torch.full((4,), 0.25), v), x1, atol=1e-6)


def test_solvers_orders_of_accuracy() -> None:
    x0 = torch.ones(2, 1)
    # dx/dt = t: exact x(1) = x0 + 0.5; midpoint and rk4 are exact, euler with n steps is off by 1/(2n).
    for solver in ("midpoint", "rk4"):
        out = flow.integrate(lambda x, t: t[:, None].expand_as(x), x0, n_steps=3, solver=solver)
        assert torch.allclose(out, x0 + 0.5, atol=1e-6)
    euler = flow.integrate(lambda x, t: t[:, None].expand_as(x), x0, n_steps=4, solver="euler")
    assert torch.allclose(euler, x0 + 0.5 - 1 / 8, atol=1e-6)
    # dx/dt = x: exact e; errors shrink with the solver's order.
    errors = {
        s: abs(float(flow.integrate(lambda x, t: x, x0, n_steps=5, solver=s)[0, 0]) - math.e) for s in flow.SOLVERS
    }
    assert errors["rk4"] < 1e-4 < errors["midpoint"] < errors["euler"]
    assert flow.velocity_calls(5, "rk4") == 20
    with pytest.raises(ValueError, match="euler, midpoint, rk4"):
        flow.integrate(lambda x, t: x, x0, n_steps=2, solver="heun")
    with pytest.raises(ValueError, match="n_steps"):
        flow.integrate(lambda x, t: x, x0, n_steps=0)


def test_time_sampling() -> None:
    g = torch.Generator().manual_seed(0)
    beta = flow.TimeDistribution("beta", 1.0, 1.5)
    t = beta.sample(20000, generator=g)
    assert 0 <= float(t.min()) and float(t.max()) <= 1
    assert abs(float(t.mean()) - 0.4) < 0.01  # mean of Beta(1, 1.5) = 1 / 2.5
    assert abs(float((t < 0.5).float().mean()) - (1 - 0.5**1.5)) < 0.015  # CDF 1 - (1 - x)^1.5
    again = beta.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, beta.sample(5, generator=torch.Generator().manual_seed(3)))
    torch.manual_seed(0)
    general = flow.sample_time_beta(20000, 2.0, 3.0)
    assert abs(float(general.mean()) - 0.4) < 0.01
    uniform = flow.TimeDistribution().sample(20000, generator=g)
    assert abs(float(uniform.mean()) - 0.5) < 0.01
    with pytest.raises(ValueError):
        flow.TimeDistribution("gamma")


def test_flow_matching_learns_two_point_distribution() -> None:
    """The exact marginal velocity of a two-point target carries noise to both points."""
    modes = torch.tensor([[-1.0], [1.0]])

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tb = t[:, None]
        # posterior weight of each mode given x_t, for x_t = t*m + (1-t)*z, z ~ N(0, 1)
        logits = -((x[:, None, :] - tb[:, None, :] * modes[None]) ** 2).sum(-1) / (2 * (1 - tb).clamp_min(1e-3) ** 2)
        w = torch.softmax(logits, dim=1)
        mean_x1 = w @ modes
        return (mean_x1 - x) / (1 - tb).clamp_min(1e-3)

    x0 = torch.randn(2000, 1, generator=torch.Generator().manual_seed(0))
    x1 = flow.integrate(velocity, x0, n_steps=50, solver="midpoint")
    assert float((x1 - x1.sign()).abs().max()) < 0.05
    assert 0.4 < float((x1 > 0).float().mean()) < 0.6


def test_sinkhorn_divergence() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    assert abs(float(sinkhorn_divergence(x, x))) < 1e-4
    near = float(sinkhorn_divergence(x, x + 0.2))
    far = float(sinkhorn_divergence(x, x + 1.0))
    assert 0 < near < far
    y = (x + 1.0).requires_grad_(True)
    sinkhorn_divergence(x, y).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_the_ot_gradient_is_the_one_of_differentiating_every_sinkhorn_iteration() -> None:
    """Only the last potential update is differentiated (envelope theorem): same value and gradient
    as autograd through a fully converged loop."""
    import math

    from il_toolkit.model.ot import entropic_ot

    def unrolled(x: torch.Tensor, y: torch.Tensor, epsilon: float = 0.05, n_iters: int = 300) -> torch.Tensor:
        cost = torch.cdist(x, y).pow(2) / x.shape[-1]
        log_a, log_b = torch.full((len(x),), -math.log(len(x))), torch.full((len(y),), -math.log(len(y)))
        f, g = torch.zeros(len(x)), torch.zeros(len(y))
        for _ in range(n_iters):
            f = -epsilon * torch.logsumexp(log_b[None] + (g[None] - cost) / epsilon, dim=1)
            g = -epsilon * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / epsilon, dim=0)
        return f.mean() + g.mean()

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 8, generator=gen).requires_grad_(True)
    y = torch.randn(40, 8, generator=gen) * 0.5 + 0.3
    fast, slow = entropic_ot(x, y, n_iters=300), unrolled(x, y)
    (fast_grad,), (slow_grad,) = torch.autograd.grad(fast, x), torch.autograd.grad(slow, x)
    assert abs(float(fast) - float(slow)) < 1e-4
    assert float((fast_grad - slow_grad).norm() / slow_grad.norm()) < 1e-3


def test_the_kernel_and_log_domain_sinkhorn_reach_the_same_potentials() -> None:
    """The kernel iterations (float64 matrix-vector products) and the log-domain ones they stand in
    for converge to the same potential; costs too large for the kernel take the log domain."""
    from il_toolkit.model.ot import _converged_g_kernel, _converged_g_log, _cost, entropic_ot

    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(30, 3, generator=gen), torch.randn(25, 3, generator=gen) + 0.5
    cost = _cost(x, y)[None]
    kernel, log = _converged_g_kernel(cost, 0.05, 500, 1e-7), _converged_g_log(cost, 0.05, 500, 1e-7)
    assert float((kernel - log).abs().max()) < 1e-4
    far = entropic_ot(x * 100.0, y * 100.0)  # cost / epsilon ~ 1e6: exp underflows, the log domain runs
    assert torch.isfinite(far) and float(far) > 0


def test_the_three_problems_solved_together_match_solved_apart() -> None:
    from il_toolkit.model.ot import entropic_ot

    gen = torch.Generator().manual_seed(2)
    y = torch.randn(40, 4, generator=gen)
    for x in (torch.randn(40, 4, generator=gen) + 0.3, torch.randn(33, 4, generator=gen) + 0.3):  # together, apart
        x.requires_grad_(True)
        together = sinkhorn_divergence(x, y, n_iters=300)
        apart = entropic_ot(x, y, n_iters=300) - 0.5 * (entropic_ot(x, x, n_iters=300) + entropic_ot(y, y, n_iters=300))
        (grad_together,), (grad_apart,) = torch.autograd.grad(together, x), torch.autograd.grad(apart, x)
        assert abs(float(together) - float(apart)) < 1e-4
        assert float((grad_together - grad_apart).norm() / grad_apart.norm()) < 1e-2


def test_vq_replaces_dead_codes() -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 4, dead_threshold=0.5, usage_decay=0.1)
    with torch.no_grad():
        vq.embedding.data[1:] += 100.0  # all but code 0 are far from every input
    z = torch.randn(32, 4)
    out = vq(z)
    assert out.replaced > 0 and out.indices.unique().numel() == 1
    after = vq(z)
    assert after.indices.unique().numel() > 1  # replaced codes now sit on encoder outputs
    vq.eval()
    assert vq(z).replaced == 0  # no replacement outside training


def test_infonce_bounds_mutual_information() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.randn(64, 8, generator=g)
    _, dependent = infonce(u, u + 0.05 * torch.randn(64, 8, generator=g))
    _, independent = infonce(u, torch.randn(64, 8, generator=g))
    assert float(dependent) > 2.0 > 0.5 > float(independent)
    assert float(dependent) <= math.log(64) + 1e-6


# -- trainers ------------------------------------------------------------------------------
def test_registry_holds_exactly_the_seed_keys() -> None:
    assert set(KEYS) == SEED_KEYS and len(KEYS) == 6
    with pytest.raises(UnknownKeyError, match="naive_flow_matching_policy_trainer"):
        TRAINER_REGISTRY.get("flow_policy_trainer")


def _spec(key: str, *, cameras: tuple[str, ...] = (), state_dim: int = 3, **extra) -> FlowModelSpec:
    depth = ("head",) if TRAINER_REGISTRY.get(key).requires_depth else ()
    if depth and "head" not in cameras:
        cameras = cameras + ("head",)
    fields = dict(TINY, action_dim=2, horizon=4, n_obs_steps=2, state_dim=state_dim, cameras=cameras,
                  depth_cameras=depth, image_size=(16, 16))
    fields.update(extra)
    return FlowModelSpec(**fields)


def _batch(spec: FlowModelSpec, batch_size: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    to, (h, w) = spec.n_obs_steps, spec.image_size
    batch = {"action": torch.randn(batch_size, spec.horizon, spec.action_dim, generator=g)}
    if spec.state_dim:
        batch["observation.state"] = torch.randn(batch_size, to, spec.state_dim, generator=g)
    for camera in spec.cameras:
        batch[f"observation.images.{camera}"] = torch.randint(0, 256, (batch_size, to, 3, h, w), generator=g, dtype=torch.uint8)
    for camera in spec.depth_cameras:
        batch[f"observation.depth.{camera}"] = torch.rand(batch_size, to, 1, h, w, generator=g)
    return batch


def _trainer(key: str, spec: FlowModelSpec, lr: float = 3e-4, seed: int = 0):
    torch.manual_seed(seed)
    cls = TRAINER_REGISTRY.get(key)
    models = cls.build_models(spec)
    return cls(models, cls.build_optimizers(models, lr=lr), None, "cpu")


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("cameras", [(), ("head", "left", "right")], ids=["state", "3cams"])
def test_one_train_step_returns_finite_metrics(key: str, cameras: tuple[str, ...]) -> None:
    spec = _spec(key, cameras=cameras)
    trainer = _trainer(key, spec)
    before = {k: v.clone() for k, v in trainer.models.state_dict().items()}
    metrics = trainer.train_step(_batch(spec), epoch=0, total_epochs=10, iterations=0)
    assert metrics and all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())
    assert {"loss", "velocity_loss", "grad_norm/action_decoder", "grad_norm/info_embedder"} <= set(metrics)
    changed = [k for k, v in trainer.models.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("action_decoder.") for k in changed)
    chunk = trainer.sample_actions(_batch(spec), n_steps=2, solver="midpoint")
    assert chunk.shape == (8, spec.horizon, spec.action_dim) and torch.isfinite(chunk).all()


def test_camera_dropout_only_where_the_seed_says() -> None:
    spec = _spec("vfp_single_expert_trainer", cameras=("head", "left", "right"))
    vfp = _trainer("vfp_single_expert_trainer", spec)
    vfp.generator = torch.Generator().manual_seed(0)
    dropped = vfp.drop_sources(4000)
    assert dropped.shape == (4000, 4) and not dropped[:, 3].any()  # state is never dropped
    assert abs(float(dropped[:, :3].float().mean()) - 0.15) < 0.02
    assert _trainer("naive_flow_matching_policy_trainer", spec).drop_sources(10) is None


@pytest.mark.parametrize("key", KEYS)
def test_loss_decreases_on_tiny_fixed_problem(key: str) -> None:
    spec = _spec(key, state_dim=3)
    trainer = _trainer(key, spec, lr=2e-3)
    batch = _batch(spec, 32, seed=1)
    states = batch["observation.state"]
    batch["action"] = states[:, -1:, :2].expand(32, 4, 2) * 2.0 + 0.5  # a deterministic function of the state

    def eval_loss() -> float:
        trainer.generator = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(trainer.compute_loss(batch)[1]["velocity_loss"])

    start = eval_loss()
    trainer.generator = None
    for i in range(40):
        trainer.train_step(batch, epoch=0, total_epochs=1, iterations=i)
    end = eval_loss()
    assert end < 0.7 * start, (start, end)  # measured: 0.19-0.28 x (L2 families), 0.58 x (L1, depth)


# -- bad input -----------------------------------------------------------------------------
def test_missing_camera_is_named() -> None:
    spec = _spec("vfp_single_expert_trainer", cameras=("head", "left", "right"))
    trainer = _trainer("vfp_single_expert_trainer", spec)
    batch = _batch(spec)
    del batch["observation.images.left"]
    with pytest.raises(BatchError, match="observation.images.left"):
        trainer.train_step(batch, 0, 1, 0)


def test_wrong_image_size_is_refused() -> None:
    spec = _spec("naive_flow_matching_policy_trainer", cameras=("head",))
    trainer = _trainer("naive_flow_matching_policy_trainer", spec)
    batch = _batch(spec)
    batch["observation.images.head"] = torch.zeros(8, 2, 3, 24, 24, dtype=torch.uint8)
    with pytest.raises(BatchError, match="24x24 pixels.*16x16"):
        trainer.train_step(batch, 0, 1, 0)
    batch["observation.images.head"] = torch.zeros(8, 2, 16, 16, 3, dtype=torch.uint8)
    with pytest.raises(BatchError, match="channels-first"):
        trainer.train_step(batch, 0, 1, 0)


def test_depth_trainer_needs_depth_and_models_must_fit_their_trainer() -> None:
    with pytest.raises(ValueError, match="depth_cameras"):
        TRAINER_REGISTRY.get("vfp_single_expert_trainer_depth").build_models(_spec("naive_flow_matching_policy_trainer"))
    depth_spec = _spec("vfp_single_expert_trainer_depth")
    models = TRAINER_REGISTRY.get("vfp_single_expert_trainer_depth").build_models(depth_spec)
    other = next((k for k in KEYS if k not in ("naive_flow_matching_policy_trainer", "vfp_single_expert_trainer",
                                                 "vfp_single_expert_trainer_depth")), None)
    if other is not None:
        with pytest.raises(ValueError, match="missing components"):
            TRAINER_REGISTRY.get(other)(models, {}, None, "cpu")


# -- policy ----------------------------------------------------------------------------------
def _state_policy(key: str, **kwargs) -> FlowMatchingPolicy:
    spec = _spec(key, state_dim=3)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    models["normalizer"].fit(actions=np.random.default_rng(0).normal(1.0, 2.0, (100, 2)),
                             states=np.random.default_rng(1).normal(size=(100, 3)))
    obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    act_space = spaces.Box(-10, 10, (2,), np.float32)
    return FlowMatchingPolicy(key, models, obs_space, act_space, **kwargs)


def _depth_policy(key: str, **kwargs) -> tuple[FlowMatchingPolicy, dict]:
    spec = _spec(key, cameras=("head",), state_dim=2)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    obs_space = spaces.Dict({
        "agent_pos": spaces.Box(-1, 1, (2,), np.float32),
        "pixels": spaces.Box(0, 255, (16, 16, 3), np.uint8),
        "depth": spaces.Box(0, 10, (1, 16, 16), np.float32),
    })
    obs_space.seed(0)
    obs = {k: np.stack([obs_space.sample()[k] for _ in range(5)]) for k in obs_space.spaces}
    return FlowMatchingPolicy(key, models, obs_space, spaces.Box(-1, 1, (2,), np.float32), **kwargs), obs


@pytest.mark.parametrize("key", KEYS)
def test_policy_save_load_gives_identical_actions(key: str, tmp_path) -> None:
    if TRAINER_REGISTRY.get(key).requires_depth:
        policy, obs = _depth_policy(key, n_action_steps=2, n_steps=3, solver="midpoint", seed=7)
    else:
        policy = _state_policy(key, n_action_steps=2, n_steps=3, solver="midpoint", seed=7)
        obs = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
    policy.save(tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert isinstance(loaded, FlowMatchingPolicy) and loaded.trainer_key == key
    cls = TRAINER_REGISTRY.get(key)
    assert set(cls.load_models(tmp_path / "p").keys()) == set(policy.sampler.models.keys())
    for name in ("action_shift", "action_scale", "state_shift", "state_scale"):
        assert torch.equal(getattr(loaded.sampler.models["normalizer"], name), getattr(policy.sampler.models["normalizer"], name))
    for _ in range(3):
        a, _ = policy.predict(obs)
        b, _ = loaded.predict(obs)
        assert a.shape == (5, 2)
        np.testing.assert_array_equal(a, b)
    other = next(k for k in KEYS if k != key)
    with pytest.raises(CheckpointError, match=f"trained by '{key}', not one trained by '{other}'"):
        TRAINER_REGISTRY.get(other).load_models(tmp_path / "p")


def test_policy_chunking_queue_and_reset() -> None:
    policy = _state_policy("naive_flow_matching_policy_trainer", n_action_steps=3, n_steps=2)
    calls = []
    original = policy.predict_chunk
    policy.predict_chunk = lambda window, **kw: calls.append(window) or original(window, **kw)  # type: ignore[method-assign]
    obs = np.zeros(3, np.float32)
    for _ in range(7):
        action, _ = policy.predict(obs)
        assert action.shape == (2,)
    assert len(calls) == 3  # 7 actions at 3 per chunk
    assert calls[0]["observation.state"].shape == (1, 2, 3)  # history padded to n_obs_steps
    policy.reset()
    policy.predict(obs)
    assert len(calls) == 4
    chunk = policy.predict_chunk({"observation.state": torch.zeros(1, 2, 3)}, n_steps=1, solver="rk4")
    assert chunk.shape == (1, 4, 2)
    with pytest.raises(ValueError, match="euler, midpoint, rk4"):
        policy.predict_chunk({"observation.state": torch.zeros(1, 2, 3)}, solver="dopri")


def test_camera_policy_with_dict_observations(tmp_path) -> None:
    key = "vfp_single_expert_trainer_depth" if "vfp_single_expert_trainer_depth" in KEYS else KEYS[0]
    spec = _spec(key, cameras=("head", "left"), state_dim=2)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    obs_space = spaces.Dict({
        "agent_pos": spaces.Box(-1, 1, (2,), np.float32),
        "pixels": spaces.Dict({c: spaces.Box(0, 255, (16, 16, 3), np.uint8) for c in ("head", "left")}),
        "depth": spaces.Dict({"head": spaces.Box(0, 10, (1, 16, 16), np.float32)}),
    })
    policy = FlowMatchingPolicy(key, models, obs_space, spaces.Box(-1, 1, (2,), np.float32), n_steps=2)
    obs = obs_space.sample()
    action, _ = policy.predict(obs)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    policy.save(tmp_path / "cam")
    again = load_policy(tmp_path / "cam")
    assert again.observation_keys == policy.observation_keys
    bad = dict(obs, pixels={"head": obs["pixels"]["head"][:8]})
    policy.reset()
    with pytest.raises(ObservationError, match=r"observation\['pixels'\] needs the keys \['head', 'left'\]"):
        policy.predict(bad)


def test_policy_errors(tmp_path) -> None:
    with pytest.raises(UnknownKeyError, match="known trainer keys: .*naive_flow_matching_policy_trainer"):
        _state_policy("naive_flow_matching_policy_trainer").__class__(
            "nope", TRAINER_REGISTRY.get("naive_flow_matching_policy_trainer").build_models(_spec("naive_flow_matching_policy_trainer")),
            spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)),
        )
    policy = _state_policy("naive_flow_matching_policy_trainer")
    policy.save(tmp_path / "naive")
    with pytest.raises(CheckpointError, match="trained by 'naive_flow_matching_policy_trainer', not 'vfp_single_expert_trainer'"):
        FlowMatchingPolicy.load(tmp_path / "naive", trainer="vfp_single_expert_trainer")
    assert FlowMatchingPolicy.load(tmp_path / "naive", trainer="naive_flow_matching_policy_trainer").trainer_key == policy.trainer_key
    richer = [k for k in KEYS if k in ("mutual_information_estimator_trainer", "cfg_vqvae_flow_matching_trainer_kot")]
    if richer:  # weights of one family refused by another family's architecture
        import json

        config_path = tmp_path / "naive" / "config.json"
        config = json.loads(config_path.read_text())
        config["config"]["trainer"] = richer[0]
        config_path.write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match="do not fit"):
            load_policy(tmp_path / "naive")


# -- family specifics ----------------------------------------------------------------------
def _trained(key: str, steps: int, spec: FlowModelSpec, batch: dict) -> tuple:
    trainer = _trainer(key, spec, lr=2e-3)
    history = [trainer.train_step(batch, 0, 1, i) for i in range(steps)]
    return trainer, history


@pytest.mark.skipif("mutual_information_estimator_trainer" not in KEYS, reason="not registered")
def test_mutual_information_estimate_rises_on_dependent_data() -> None:
    spec = _spec("mutual_information_estimator_trainer")
    batch = _batch(spec, 32, seed=3)
    batch["action"] = batch["observation.state"][:, -1:, :2].expand(32, 4, 2).clone()
    _, history = _trained("mutual_information_estimator_trainer", 40, spec, batch)
    first, last = history[0]["mi_estimate"], np.mean([h["mi_estimate"] for h in history[-5:]])
    assert last > first + 0.5 and last <= math.log(32) + 1e-6, (first, last)


@pytest.mark.skipif("cfg_vqvae_flow_matching_trainer_kot" not in KEYS, reason="not registered")
def test_cfg_vqvae_logs_codes_and_guides() -> None:
    key = "cfg_vqvae_flow_matching_trainer_kot"
    spec = _spec(key)
    trainer, history = _trained(key, 5, spec, _batch(spec, 16))
    assert {"vq_loss", "prior_loss", "kot", "code_perplexity", "codes_replaced", "cfg_dropped_fraction"} <= set(history[-1])
    obs = _batch(spec, 4, seed=5)
    plain = trainer.sample_actions(obs, n_steps=2, generator=torch.Generator().manual_seed(0))
    guided = trainer.sample_actions(obs, n_steps=2, generator=torch.Generator().manual_seed(0), guidance_scale=3.0)
    assert torch.isfinite(guided).all() and not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="guidance_scale"):
        trainer.sample_actions(obs, n_steps=1, guidance=2.0)


@pytest.mark.skipif("variational_flow_matching_policy_trainer" not in KEYS, reason="not registered")
def test_variational_logs_expert_usage() -> None:
    key = "variational_flow_matching_policy_trainer"
    spec = _spec(key, n_experts=3)
    trainer, history = _trained(key, 3, spec, _batch(spec, 16))
    metrics = history[-1]
    usage = [metrics[f"expert_usage/{e}"] for e in range(3)]
    assert abs(sum(usage) - 1) < 1e-5 and 0 <= metrics["expert_evenness"] <= 1
    assert 0 <= metrics["gate_sample_entropy"] <= math.log(3) + 1e-6
    assert abs(sum(metrics[f"expert_top1/{e}"] for e in range(3)) - 1) < 1e-5
    top1 = trainer.sample_actions(_batch(spec, 4), n_steps=2, expert_choice="top1")
    assert top1.shape == (4, 4, 2) and torch.isfinite(top1).all()


@pytest.mark.parametrize("key", ["naive_flow_matching_policy_trainer", "variational_flow_matching_policy_trainer"])
def test_training_resumes_exactly(key: str, tmp_path) -> None:
    if key not in KEYS:
        pytest.skip("not registered")
    spec = _spec(key)
    batch = _batch(spec, 8)
    a = _trainer(key, spec, lr=1e-3, seed=0)
    for i in range(3):
        a.train_step(batch, 0, 1, i)
    a.save_training_state(tmp_path / "state", epoch=0, iterations=3)
    b = _trainer(key, spec, lr=1e-3, seed=1)  # different initial weights, fresh optimizers
    assert b.load_training_state(tmp_path / "state") == {"epoch": 0, "iterations": 3}
    for trainer in (a, b):
        trainer.generator = torch.Generator().manual_seed(9)
        trainer.train_step(batch, 0, 1, 3)
    for (name, x), (_, y) in zip(a.models.state_dict().items(), b.models.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name
    other = next(k for k in KEYS if k != key)
    with pytest.raises(CheckpointError, match=f"training state of '{key}'"):
        _trainer(other, _spec(other)).load_training_state(tmp_path / "state")


def test_temporal_ensembling_averages_overlapping_chunks(tmp_path) -> None:
    policy = _state_policy("naive_flow_matching_policy_trainer", temporal_ensemble_coeff=0.5, n_steps=1)
    chunks = iter([np.full((1, 4, 2), v, np.float32) * np.arange(1, 5)[None, :, None] for v in (1.0, 2.0, 3.0)])
    policy.predict_chunk = lambda window, **kw: next(chunks)  # type: ignore[method-assign]
    obs = np.zeros(3, np.float32)
    # action_offset = n_obs_steps - 1 = 1, so chunks are used from index 1: chunk k gives v * (2, 3, 4)
    first = policy.predict(obs)[0]
    np.testing.assert_allclose(first, [2.0, 2.0])
    second = policy.predict(obs)[0]  # oldest chunk's 2nd entry (1*3) weight 1, newest's 1st (2*2) weight e^-0.5
    w = np.exp(-0.5)
    np.testing.assert_allclose(second, [(3.0 + w * 4.0) / (1 + w)] * 2, rtol=1e-6)
    policy.save(tmp_path / "te")
    assert load_policy(tmp_path / "te").temporal_ensemble_coeff == 0.5


def test_loss_module_overrides_the_family_default() -> None:
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key)
    cls = TRAINER_REGISTRY.get(key)
    models = cls.build_models(spec)

    class Huberish(torch.nn.Module):
        def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            assert predicted.shape == target.shape == (8, spec.horizon, spec.action_dim)
            return 7.0 + 0.0 * (predicted - target).abs().mean()

    trainer = cls(models, cls.build_optimizers(models), Huberish(), "cpu")
    assert trainer.train_step(_batch(spec), 0, 1, 0)["velocity_loss"] == 7.0
    without = cls(models, {}, None, "cpu")
    with pytest.raises(RuntimeError, match="without optimizers"):
        without.train_step(_batch(spec), 0, 1, 0)


def test_policy_trains_through_compute_loss_like_bc() -> None:
    """The toolkit's supervised loop (BC, DAgger) only needs compute_loss + parameters()."""
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, n_obs_steps=1, horizon=1)
    torch.manual_seed(0)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    policy = FlowMatchingPolicy(key, models, spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-5, 5, (2,), np.float32),
                                n_steps=5)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 3)).astype(np.float32)
    actions = np.tanh(obs[:, :2]) * 2
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, metrics = policy.compute_loss(obs, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(metrics["loss"])
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    predicted, _ = policy.predict(obs)
    assert np.mean(np.abs(predicted - actions)) < 0.5 * np.mean(np.abs(actions))
    with pytest.raises(ValueError, match="n_obs_steps=2"):
        _state_policy(key).compute_loss(obs, actions)
    chunked = FlowMatchingPolicy(key, TRAINER_REGISTRY.get(key).build_models(_spec(key, n_obs_steps=1)),
                                 spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-5, 5, (2,), np.float32))
    with pytest.raises(ValueError, match="horizon=4"):
        chunked.compute_loss(obs, actions)
    assert math.isfinite(chunked.compute_loss(obs, np.repeat(actions[:, None], 4, axis=1))[1]["loss"])


def test_create_infers_the_spec_from_env_spaces() -> None:
    pusht_pixels = spaces.Dict({"agent_pos": spaces.Box(0, 512, (2,), np.float64),
                                "pixels": spaces.Box(0, 255, (24, 24, 3), np.uint8)})
    policy = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", pusht_pixels, spaces.Box(0, 512, (2,), np.float32),
                                       horizon=4, n_obs_steps=2, **{k: v for k, v in TINY.items()})
    assert policy.spec.state_dim == 2 and policy.spec.cameras == ("pixels",) and policy.spec.image_size == (24, 24)
    action, _ = policy.predict(pusht_pixels.sample())
    assert action.shape == (2,)
    aloha = spaces.Dict({"agent_pos": spaces.Box(-4, 4, (14,), np.float64), "pixels": spaces.Dict(
        {c: spaces.Box(0, 255, (16, 16, 3), np.uint8) for c in ("top", "left_wrist", "right_wrist")})})
    vfp = FlowMatchingPolicy.create("vfp_single_expert_trainer", aloha, spaces.Box(-1, 1, (14,), np.float32), horizon=4, **TINY)
    assert set(vfp.spec.cameras) == {"top", "left_wrist", "right_wrist"} and vfp.spec.action_dim == 14
    assert vfp.predict({k: np.stack([aloha.sample()[k]] * 3) if k == "agent_pos" else
                        {c: np.stack([v] * 3) for c, v in aloha.sample()[k].items()} for k in aloha.spaces})[0].shape == (3, 14)
    top_level = spaces.Dict({c: spaces.Box(0, 255, (16, 16, 3), np.uint8) for c in ("top", "angle")}
                            | {"depth": spaces.Dict({"top": spaces.Box(0, 10, (16, 16, 1), np.float32)})})
    depth = FlowMatchingPolicy.create("vfp_single_expert_trainer_depth", top_level, spaces.Box(-1, 1, (14,), np.float32),
                                      horizon=4, **TINY)
    assert set(depth.spec.cameras) == {"top", "angle"} and depth.spec.depth_cameras == ("top",)
    assert depth.observation_keys["observation.images.angle"] == "angle"
    assert depth.predict(top_level.sample())[0].shape == (14,)
    state_only = FlowMatchingPolicy.create("naive_flow_matching_policy_trainer", spaces.Box(-1, 1, (5,)), spaces.Box(-1, 1, (2,)))
    assert state_only.spec.state_dim == 5 and state_only.spec.cameras == ()


# -- windows and the training loop ------------------------------------------------------------
def test_windows_pad_edges_like_diffusion_policy() -> None:
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    obs = {"observation.state": np.arange(5, dtype=np.float32)[:, None]}  # T + 1 = 5 observations
    acts = np.arange(4, dtype=np.float32)[:, None] * 10  # T = 4 actions
    data = WindowDataset.from_episodes([(obs, acts), (obs, acts)], n_obs_steps=2, horizon=3)
    assert len(data) == 8
    first = data.batch(torch.tensor([0, 3, 4]))
    assert first["observation.state"][:, :, 0].tolist() == [[0, 0], [2, 3], [0, 0]]
    assert first["action"][:, :, 0].tolist() == [[0, 0, 10], [20, 30, 30], [0, 0, 10]]
    with pytest.raises(ValueError, match="4 actions but 2"):
        WindowDataset.from_episodes([({"observation.state": np.zeros((2, 1))}, acts)], 2, 3)


def test_train_flow_policy_end_to_end_and_resume(tmp_path) -> None:
    from types import SimpleNamespace

    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    rng = np.random.default_rng(0)
    trajectories = []
    for _ in range(4):
        obs = rng.normal(size=(13, 3)).astype(np.float32)
        trajectories.append(SimpleNamespace(obs=obs, acts=np.tanh(obs[:-1, :2])))
    obs_space, act_space = spaces.Box(-5, 5, (3,), np.float32), spaces.Box(-1, 1, (2,), np.float32)
    fields = dict(TINY, horizon=4, n_obs_steps=2)
    logged: list[int] = []
    kwargs = dict(steps=6, batch_size=8, spec_fields=fields, checkpoint_dir=tmp_path / "run", checkpoint_every=3)
    policy = train_flow_policy("naive_flow_matching_policy_trainer", trajectories, obs_space, act_space,
                               log=lambda m, step: logged.append(step), **kwargs)
    assert logged == list(range(6))
    assert (tmp_path / "run" / "policy" / "model.safetensors").is_file()
    restored = load_policy(tmp_path / "run" / "policy")
    assert torch.equal(restored.model["normalizer"].action_shift, policy.model["normalizer"].action_shift)
    logged.clear()
    kwargs["steps"] = 8
    train_flow_policy("naive_flow_matching_policy_trainer", trajectories, obs_space, act_space, resume=True,
                      log=lambda m, step: logged.append(step), **kwargs)
    assert logged == [6, 7]  # continued from the saved step


@pytest.mark.parametrize("key", ["naive_flow_matching_policy_trainer", "cfg_vqvae_flow_matching_trainer_kot"])
def test_training_twice_with_one_seed_gives_identical_weights(key: str) -> None:
    if key not in KEYS:
        pytest.skip("not registered")
    spec = _spec(key, cameras=("head",))
    runs = []
    for _ in range(2):
        trainer = _trainer(key, spec, seed=4)
        trainer.generator = torch.Generator().manual_seed(5)
        for i in range(3):
            trainer.train_step(_batch(spec, 8, seed=i), 0, 1, i)
        runs.append(trainer.models.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_episodes_shorter_than_the_chunk_are_padded_with_a_warning_and_all_short_is_refused() -> None:
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    def episode(n: int):
        return {"observation.state": np.zeros((n + 1, 2), np.float32)}, np.zeros((n, 2), np.float32)

    with pytest.warns(UserWarning, match="1 of 2 episodes are shorter than the action chunk .shortest: 3 actions, horizon 8"):
        data = WindowDataset.from_episodes([episode(3), episode(20)], n_obs_steps=1, horizon=8)
    assert len(data) == 23
    with pytest.raises(ValueError, match="every episode is shorter than the action chunk.*horizon 8.*at most 5"):
        WindowDataset.from_episodes([episode(3), episode(5)], n_obs_steps=1, horizon=8)


# -- action statistics per chunk position ------------------------------------------------------
def test_each_chunk_position_gets_its_own_scale_and_unlabelled_positions_are_left_out() -> None:
    from il_toolkit.model.normalizer import Normalizer

    rng = np.random.default_rng(0)
    spread = np.array([1.0, 3.0, 9.0])[None, :, None]  # relative actions: far positions spread wider
    chunks = rng.normal(0.0, 1.0, (4000, 3, 2)) * spread
    chunks[:10, 2] = 1e6  # positions past a cut episode's end: no label, must not count
    labelled = chunks.copy()
    labelled[:10, 2] = np.nan
    normalizer = Normalizer(0, 2, action_positions=3).fit(actions=labelled)
    assert normalizer.action_scale.shape == (3, 2)
    np.testing.assert_allclose(normalizer.action_scale[:, 0].numpy(), [1.0, 3.0, 9.0], rtol=0.05)
    normalized = normalizer.normalize_action(torch.as_tensor(chunks[10:]).float())
    np.testing.assert_allclose(normalized.std(dim=0).numpy(), np.ones((3, 2)), rtol=0.05)
    with pytest.raises(ValueError, match="position by position"):
        normalizer.normalize_action(torch.zeros(5, 2))
    pooled = Normalizer(0, 2).fit(actions=labelled)
    assert pooled.action_scale.shape == (2,) and float(pooled.action_scale[0]) > 5  # one scale for the three
    flat = Normalizer(0, 2, action_positions=3).fit(actions=labelled.reshape(-1, 2))  # no chunk axis: pooled
    np.testing.assert_allclose(flat.action_scale.numpy(), pooled.action_scale.expand(3, 2).numpy())


def test_a_policy_saved_before_the_statistics_option_loads_with_its_per_dimension_ones(tmp_path) -> None:
    import json

    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, state_dim=3)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    models["normalizer"].fit(actions=np.random.default_rng(0).normal(1.0, 2.0, (100, spec.horizon, 2)),
                             states=np.random.default_rng(1).normal(size=(100, 3)))
    obs_space, act_space = spaces.Box(-np.inf, np.inf, (3,), np.float32), spaces.Box(-10, 10, (2,), np.float32)
    policy = FlowMatchingPolicy(key, models, obs_space, act_space, seed=3)
    path = policy.save(tmp_path / "old")
    config = json.loads((path / "config.json").read_text())
    del config["config"]["spec"]["action_statistics"]  # as written before the option existed
    (path / "config.json").write_text(json.dumps(config))
    loaded = load_policy(path)
    assert loaded.spec.action_statistics == "per_dimension" and loaded.model["normalizer"].action_scale.shape == (2,)
    obs = np.zeros(3, np.float32)
    np.testing.assert_array_equal(loaded.predict(obs)[0], policy.predict(obs)[0])
    assert FlowModelSpec(action_dim=2, state_dim=3).action_statistics == "per_dimension"


def test_a_training_state_saved_before_the_statistics_option_resumes_and_another_spec_is_named(tmp_path) -> None:
    import json

    key = "naive_flow_matching_policy_trainer"
    old_spec = _spec(key)
    _trainer(key, old_spec).save_training_state(tmp_path / "state", epoch=0, iterations=5)
    meta_path = tmp_path / "state" / "trainer_state.json"
    meta = json.loads(meta_path.read_text())
    del meta["spec"]["action_statistics"]  # as written before the option existed
    meta_path.write_text(json.dumps(meta))
    assert _trainer(key, old_spec).load_training_state(tmp_path / "state")["iterations"] == 5
    with pytest.raises(CheckpointError, match="action_statistics: saved 'per_dimension', here 'per_position'"):
        _trainer(key, _spec(key, action_statistics="per_position")).load_training_state(tmp_path / "state")


def test_normaliser_statistics_refuse_actions_of_another_shape() -> None:
    from il_toolkit.model.normalizer import Normalizer

    with pytest.raises(ValueError, match="actions have dimension 4, the model expects 2"):
        Normalizer(0, 2, action_positions=3).fit(actions=np.zeros((10, 3, 4)))
    with pytest.raises(ValueError, match="pass chunks \\(N, 3, 2\\)"):
        Normalizer(0, 2, action_positions=3).fit(actions=np.zeros((10, 4, 2)))
    sparse = np.random.default_rng(0).normal(0.0, 1.0, (100, 2, 1))
    sparse[5:, 1] = np.nan  # 5 labelled values at position 1: too few for statistics of its own
    normalizer = Normalizer(0, 1, action_positions=2).fit(actions=sparse)
    assert float(normalizer.action_scale[1, 0]) == float(Normalizer(0, 1).fit(actions=sparse).action_scale[0])


# -- shortcut models (Frans et al. 2024) ----------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("velocity_net", ["mlp", "transformer"])
def test_every_trainer_trains_and_samples_a_shortcut_model(key: str, velocity_net: str) -> None:
    spec = _spec(key, shortcut_steps=8, velocity_net=velocity_net)
    trainer = _trainer(key, spec)
    metrics = trainer.train_step(_batch(spec), epoch=0, total_epochs=1, iterations=0)
    assert all(math.isfinite(v) for v in metrics.values())
    assert {"self_consistency_loss", "flow_matching_loss"} <= set(metrics)
    steps = [p for name, p in trainer.models["action_decoder"].named_parameters() if ".step." in name or
             name.startswith("step.")]
    assert steps and all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in steps)
    # the family's velocity passes the step size on: other steps, other velocities
    trainer.models.eval()
    with torch.no_grad():
        batch = trainer.to_device(_batch(spec))
        context = trainer.inference_context(trainer.encode(batch, training=False), deterministic=True)
        x, t = torch.randn(8, spec.horizon, spec.action_dim), torch.full((8,), 0.5)
        whole = trainer.velocity(x, t, {**context, "step_size": torch.full((8,), 0.5)})
        half = trainer.velocity(x, t, {**context, "step_size": torch.full((8,), 0.25)})
    assert not torch.allclose(whole, half)
    for n_steps in (1, 2, 3):
        chunk = trainer.sample_actions(_batch(spec), n_steps=n_steps)
        assert chunk.shape == (8, spec.horizon, spec.action_dim) and torch.isfinite(chunk).all()


def test_a_shortcut_model_can_be_told_another_step_size_and_a_plain_model_refuses_one(tmp_path) -> None:
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, shortcut_steps=8)
    trainer = _trainer(key, spec)
    for _ in range(3):
        trainer.train_step(_batch(spec), epoch=0, total_epochs=1, iterations=0)

    def chunk(**told) -> torch.Tensor:
        return trainer.sample_actions(_batch(spec), n_steps=2, generator=torch.Generator().manual_seed(0), **told)

    assert torch.equal(chunk(shortcut_step_size=0.5), chunk())  # the default: the solver's step, 1 / n_steps
    assert not torch.allclose(chunk(shortcut_step_size=0.0), chunk())  # the smallest: plain Euler on the same net
    assert torch.equal(chunk(shortcut_step_size=0.0), chunk(shortcut_step_size=1 / 8))  # 0 counts as 1 / M
    assert torch.equal(trainer.sample_actions(_batch(spec), n_steps=8, generator=torch.Generator().manual_seed(0)),
                       trainer.sample_actions(_batch(spec), n_steps=8, generator=torch.Generator().manual_seed(0),
                                              shortcut_step_size=0.0))  # M steps are steps of the smallest size
    policy = FlowMatchingPolicy(key, trainer.models, spaces.Box(-np.inf, np.inf, (3,), np.float32),
                                spaces.Box(-10, 10, (spec.action_dim,), np.float32), n_steps=2,
                                inference_options={"shortcut_step_size": 0.0})  # the policy passes it on
    policy.set_seed(0)
    told_smallest = policy.predict_chunk(_batch(spec))
    reloaded = FlowMatchingPolicy.load(policy.save(tmp_path / "told"))
    assert reloaded.inference_options == {"shortcut_step_size": 0.0}
    reloaded.set_seed(0)
    np.testing.assert_allclose(reloaded.predict_chunk(_batch(spec)), told_smallest, atol=1e-6)
    policy.set_seed(0)
    policy.inference_options = {}
    assert not np.allclose(told_smallest, policy.predict_chunk(_batch(spec)))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        chunk(shortcut_step_size=1.5)
    plain = _trainer(key, _spec(key))
    with pytest.raises(ValueError, match="plain flow matching"):
        plain.sample_actions(_batch(plain.spec), n_steps=2, shortcut_step_size=0.0)
    with pytest.raises(ValueError, match="inference option shortcut_step_size is for shortcut models"):  # at once
        FlowMatchingPolicy(key, plain.models, policy.observation_space, policy.action_space,
                           inference_options={"shortcut_step_size": 0.0})


def test_shortcut_targets_are_two_half_steps_of_the_model_on_a_quarter_of_the_batch() -> None:
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, state_dim=3, shortcut_steps=16)
    trainer = _trainer(key, spec)
    trainer.generator = torch.Generator().manual_seed(0)
    batch = 64
    x1 = torch.randn(batch, spec.horizon, spec.action_dim)
    x0 = torch.randn_like(x1)
    t = torch.rand(batch)
    x_t, target = flow.flow_matching_pair(x0, x1, t)
    cond = trainer.encode(trainer.to_device(_batch(spec, batch)), training=True)
    x_s, t_s, target_s, context = trainer.shortcut_targets(x0, x1, x_t, t, target, {"cond": cond})
    step = context["step_size"]
    n = batch // 4
    assert torch.equal(step[n:], torch.zeros(batch - n)) and torch.equal(target_s[n:], target[n:])
    assert set(step[:n].tolist()) == {1.0, 0.5, 0.25, 0.125}  # 2^-k, k < log2(16)
    assert not target_s.requires_grad
    assert bool(((t_s[:n] / step[:n]) == (t_s[:n] / step[:n]).round()).all()) and bool((t_s[:n] + step[:n] <= 1).all())
    torch.testing.assert_close(x_s[:n], flow.interpolate(x0[:n], x1[:n], t_s[:n]))
    half = step[:n] / 2
    bound = max(float(x0[:n].abs().max()), float(x1[:n].abs().max()))
    with torch.no_grad():
        first = trainer.velocity(x_s[:n], t_s[:n], {"cond": cond[:n], "step_size": half})
        second = trainer.velocity((x_s[:n] + half[:, None, None] * first).clamp(-bound, bound), t_s[:n] + half,
                                  {"cond": cond[:n], "step_size": half})
    torch.testing.assert_close(target_s[:n], ((first + second) / 2).clamp(-2 * bound, 2 * bound))


def test_self_consistency_targets_stay_in_the_range_of_the_batch() -> None:
    """A teacher that answers far off its paths: the half-step point is clipped to the range of the
    noise and chunks (``bound``), the target to the largest velocity a straight path in it can have."""
    key = "naive_flow_matching_policy_trainer"
    trainer = _trainer(key, _spec(key, shortcut_steps=8))
    x = torch.zeros(4, 4, 2)
    for sign in (1.0, -1.0):
        seen = []

        def wild_velocity(x, t, context, sign=sign):
            seen.append(x.clone())
            return torch.full_like(x, sign * 1e6)

        trainer.velocity = wild_velocity
        target = trainer.self_consistency_target(x, torch.zeros(4), torch.ones(4), {}, bound=3.0)
        assert torch.equal(seen[1], torch.full_like(x, 3.0 * sign)) and torch.equal(target, torch.full_like(x, 6.0 * sign))


def test_shortcut_targets_are_bounded_by_their_own_rows() -> None:
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, state_dim=3, shortcut_steps=8)
    trainer = _trainer(key, spec)
    trainer.velocity = lambda x, t, context: torch.full_like(x, 1e6)
    batch = 16
    x1 = torch.rand(batch, spec.horizon, spec.action_dim) * 2 - 1
    x0 = torch.rand_like(x1) * 2 - 1
    x0[0, 0, 0] = 2.5  # the largest of the self-consistency rows
    x0[batch // 4:] *= 10  # the flow-matching rows: no say in the bound
    t = torch.rand(batch)
    x_t, target = flow.flow_matching_pair(x0, x1, t)
    _, _, target_s, _ = trainer.shortcut_targets(x0, x1, x_t, t, target, {})
    assert torch.equal(target_s[: batch // 4], torch.full_like(target_s[: batch // 4], 5.0))


def test_a_shortcut_model_with_most_targets_self_made_keeps_a_bounded_loss() -> None:
    """Chunks of 16 x 14 that depend on the state, 75% of every batch on self-made targets, the live net
    as its own teacher: unbounded, its targets fed on themselves and the loss passed 1e24 within 100
    steps (as on ALOHA)."""
    key = "naive_flow_matching_policy_trainer"
    spec = FlowModelSpec(action_dim=14, horizon=16, n_obs_steps=1, state_dim=8, d_model=64, mlp_width=256,
                         shortcut_steps=8, shortcut_fraction=0.75, shortcut_ema_decay=0.0)
    trainer = _trainer(key, spec, lr=3e-3)
    trainer.generator = torch.Generator().manual_seed(0)
    g = torch.Generator().manual_seed(1)
    shape = torch.linspace(-1, 1, 16 * 14).view(1, 16, 14)
    losses = []
    for i in range(100):
        state = torch.randn(64, 1, 8, generator=g)
        metrics = trainer.train_step({"observation.state": state, "action": torch.tanh(3 * state[:, :, :1] * shape)},
                                     0, 1, i)
        losses.append(metrics["loss"])
    assert all(math.isfinite(loss) and loss < 100 for loss in losses) and losses[-1] < 1


def test_the_shortcut_teacher_is_a_moving_average_of_the_velocity_net() -> None:
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, shortcut_steps=8, shortcut_ema_decay=0.9)
    trainer = _trainer(key, spec, lr=1e-2)
    batch = _batch(spec)

    def weights(module: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in module.parameters()]

    trainer.train_step(batch, 0, 1, 0)
    assert all(torch.equal(a, b) for a, b in zip(weights(trainer.teacher.module), weights(trainer.models["action_decoder"])))
    before = weights(trainer.teacher.module)
    trainer.train_step(batch, 0, 1, 1)
    live = weights(trainer.models["action_decoder"])
    for old, new, now in zip(before, live, weights(trainer.teacher.module)):
        torch.testing.assert_close(now, 0.9 * old + 0.1 * new)
    assert not all(torch.equal(a, b) for a, b in zip(before, live))

    assert _trainer(key, _spec(key, shortcut_steps=8, shortcut_ema_decay=0.0)).teacher is None
    assert _trainer(key, _spec(key)).teacher is None
    # a policy's sampler never takes a train_step: no average, its compute_loss (BC, DAgger) uses the live net
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    box = spaces.Box(-1, 1, (3,), np.float32)
    assert FlowMatchingPolicy(key, models, box, spaces.Box(-1, 1, (2,), np.float32)).sampler.teacher is None


@pytest.mark.parametrize("key", KEYS)
def test_every_family_takes_its_self_consistency_half_steps_with_the_teacher(key: str) -> None:
    class Constant(torch.nn.Module):  # a teacher that always answers 0.5
        def forward(self, x, *args):
            return torch.full_like(x, 0.5)

    spec = _spec(key, shortcut_steps=8)
    trainer = _trainer(key, spec)
    trainer.teacher = Constant()
    batch = trainer.to_device(_batch(spec, 4))
    context = trainer.context_rows(trainer.training_context(trainer.encode(batch, training=True),
                                                            trainer.models["normalizer"].normalize_action(batch["action"])), 4, 4)
    x = torch.randn(4, spec.horizon, spec.action_dim)
    target = trainer.self_consistency_target(x, torch.zeros(4), torch.ones(4), context, bound=3.0)
    assert torch.equal(target, torch.full_like(x, 0.5))


def test_a_shortcut_training_state_keeps_its_teacher(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, shortcut_steps=8, shortcut_ema_decay=0.5)
    batch = _batch(spec)
    a = _trainer(key, spec, lr=1e-2)
    for i in range(3):
        a.train_step(batch, 0, 1, i)
    a.save_training_state(tmp_path / "state", epoch=0, iterations=3)
    b = _trainer(key, spec, lr=1e-2, seed=1)
    b.load_training_state(tmp_path / "state")
    for x, y in zip(a.teacher.state_dict().values(), b.teacher.state_dict().values()):
        assert torch.equal(x, y)
    for trainer in (a, b):
        trainer.generator = torch.Generator().manual_seed(9)
        trainer.train_step(batch, 0, 1, 3)
    for (name, x), (_, y) in zip(a.models.state_dict().items(), b.models.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name
    # a state saved without a teacher (before the moving average): it restarts from the saved net
    path = tmp_path / "state" / "trainer_state.safetensors"
    save_file({k: v for k, v in load_file(str(path)).items() if not k.startswith("teacher.")}, str(path))
    c = _trainer(key, spec, seed=1)
    c.load_training_state(tmp_path / "state")
    for x, y in zip(c.teacher.module.parameters(), c.models["action_decoder"].parameters()):
        assert torch.equal(x, y)


def test_a_shortcut_model_samples_both_modes_in_one_step_where_plain_flow_matching_gives_their_mean() -> None:
    """Two modes at -1 and +1: one Euler step of plain flow matching lands on E[x1] = 0; a shortcut
    model's one step lands on the modes, with the net as its own teacher (the default) and with a short
    moving average of it (0.9: the lag of 0.99, about 100 steps per step size times 7 sizes, exceeds these 300 steps)."""

    def near_a_mode(shortcut_steps: int, ema_decay: float = 0.0) -> float:
        key = "naive_flow_matching_policy_trainer"
        spec = FlowModelSpec(action_dim=1, horizon=1, n_obs_steps=1, state_dim=1, d_model=32, mlp_width=64,
                             shortcut_steps=shortcut_steps, shortcut_ema_decay=ema_decay)
        trainer = _trainer(key, spec, lr=3e-3)
        trainer.generator = torch.Generator().manual_seed(0)
        g = torch.Generator().manual_seed(1)
        for i in range(300):
            modes = torch.randint(0, 2, (128, 1, 1), generator=g).float() * 2 - 1
            batch = {"observation.state": torch.randn(128, 1, 1, generator=g),
                     "action": modes + 0.05 * torch.randn(128, 1, 1, generator=g)}
            trainer.train_step(batch, 0, 1, i)
        chunk = trainer.sample_actions({"observation.state": torch.randn(1000, 1, 1, generator=g)}, n_steps=1,
                                       generator=torch.Generator().manual_seed(2))
        return float((chunk.abs() > 0.5).float().mean())

    assert near_a_mode(0) < 0.2
    assert near_a_mode(128) > 0.7
    assert near_a_mode(128, ema_decay=0.9) > 0.7


def test_shortcut_settings_are_checked_and_kept_in_the_checkpoint(tmp_path) -> None:
    with pytest.raises(ValueError, match="power of two"):
        FlowModelSpec(action_dim=2, state_dim=3, shortcut_steps=12)
    with pytest.raises(ValueError, match="shortcut_fraction"):
        FlowModelSpec(action_dim=2, state_dim=3, shortcut_steps=8, shortcut_fraction=1.0)
    with pytest.raises(ValueError, match="shortcut_ema_decay"):
        FlowModelSpec(action_dim=2, state_dim=3, shortcut_steps=8, shortcut_ema_decay=1.0)
    assert FlowModelSpec.from_json({"action_dim": 2, "state_dim": 3}).shortcut_steps == 0  # saved before the option
    plain = _spec("naive_flow_matching_policy_trainer")
    decoder = TRAINER_REGISTRY.get("naive_flow_matching_policy_trainer").build_models(plain)["action_decoder"]
    with pytest.raises(ValueError, match="without step-size conditioning"):
        decoder(torch.zeros(1, 4, 2), torch.zeros(1), torch.zeros(1, 1, 32), torch.ones(1))
    key = "naive_flow_matching_policy_trainer"
    spec = _spec(key, state_dim=3, shortcut_steps=32)
    models = TRAINER_REGISTRY.get(key).build_models(spec)
    obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    policy = FlowMatchingPolicy(key, models, obs_space, spaces.Box(-10, 10, (2,), np.float32), n_steps=1, seed=3)
    policy.save(tmp_path / "p")
    loaded = load_policy(tmp_path / "p")
    assert loaded.spec.shortcut_steps == 32 and loaded.n_steps == 1
    obs = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(policy.predict(obs)[0], loaded.predict(obs)[0])
