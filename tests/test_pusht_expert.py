"""The PushT scripted expert: geometry, the closed-form push model, success, batching, saving."""

from __future__ import annotations

import numpy as np
import pytest

import il_toolkit  # noqa: F401  (registers the envs)
from il_toolkit.envs import make_env
from il_toolkit.experts import DEFAULT_EXPERTS, EXPERT_REGISTRY, make_expert
from il_toolkit.experts import pusht as P
from il_toolkit.policies import load, load_config

SUCCESS_SEEDS = (0, 1, 2, 3, 4)


def _run(env, expert, seed: int, random_steps: int = 0, max_steps: int = 300) -> tuple[bool, int]:
    """Roll out from ``seed``; the first ``random_steps`` actions are uniform random. (success, steps)."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    rng = np.random.default_rng(seed)
    info: dict = {}
    for t in range(max_steps):
        action = rng.uniform(0, 512, 2) if t < random_steps else expert.predict(obs)[0]
        obs, _, terminated, truncated, info = env.step(action)
        if info["max_coverage"] > 0.95:
            return True, t + 1
        if truncated:
            break
    return False, max_steps


def _random_states(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(0, 512, (n, 2)), rng.uniform(60, 450, (n, 2)), rng.uniform(0, 2 * np.pi, n)]
    )


@pytest.fixture(scope="module")
def state_env():
    env = make_env("il_toolkit/PushT-v0")
    yield env
    env.close()


def test_geometry_matches_simulator(state_env):
    state_env.reset(seed=0)
    sim = P.sim_of(state_env)
    bar, stem = (np.array(shape.get_vertices()) for shape in sim._block_shapes)
    assert (bar[:, 0].min(), bar[:, 0].max(), bar[:, 1].min(), bar[:, 1].max()) == P.BAR
    assert (stem[:, 0].min(), stem[:, 0].max(), stem[:, 1].min(), stem[:, 1].max()) == P.STEM
    assert tuple(sim.block.center_of_gravity) == tuple(P.COG)
    assert sim.block.mass == P.MASS and sim.block.moment == P.MOMENT
    assert [s.radius for s in sim.agent.shapes] == [P.AGENT_RADIUS]
    np.testing.assert_allclose(sim.goal_pose, P.GOAL_POSE)


@pytest.mark.parametrize("contact", [0, 10, 40, 50, 70])
def test_closed_form_push_response_matches_simulator(state_env, contact):
    """A push along a contact normal moves the block along that contact's twist (±10%)."""
    tables = P._tables(P.PushTControlParams())
    point, normal = tables.points[contact], tables.normals[contact]
    sim = P.sim_of(state_env)
    state_env.reset(seed=0, options={"reset_to_state": [100, 100, 256, 300, 0.3]})
    before = P.sim_state(sim)
    rot = P._rot(before[4])
    agent = before[2:4] + rot @ (point - normal * (P.AGENT_RADIUS + 0.5))
    sim.agent.position, sim.agent.velocity = tuple(agent), (0.0, 0.0)
    for _ in range(3):
        state_env.step(agent + rot @ normal * 8.0)
    after = P.sim_state(sim)
    moved_cog = after[2:4] + P._rot(after[4]) @ P.COG - (before[2:4] + rot @ P.COG)
    moved = np.array([*(rot.T @ moved_cog), after[4] - before[4]])
    twist = tables.twists[contact]
    push = float(moved @ twist / (twist @ twist))  # least-squares push distance
    assert push > 1.0
    np.testing.assert_allclose(moved, push * twist, atol=0.1 * push * np.abs(twist).max() + 0.02)


@pytest.mark.parametrize("seed", SUCCESS_SEEDS)
def test_succeeds_on_fixed_seeds(state_env, seed):
    success, steps = _run(state_env, P.PushTExpert(state_env), seed)
    assert success, f"seed {seed}: no success within 300 steps"


@pytest.mark.parametrize("seed", [1000, 1001])
def test_takes_over_after_random_steps(state_env, seed):
    success, _ = _run(state_env, P.PushTExpert(state_env), seed, random_steps=50)
    assert success


def test_noise_and_randomized_approach_still_succeed(state_env):
    expert = P.PushTExpert(state_env, action_noise=3.0, randomize_approach=True, seed=0)
    assert all(_run(state_env, expert, seed)[0] for seed in (10, 11))


def test_batch_predict_equals_per_row_and_is_memoryless():
    expert = P.PushTExpert(None)
    states = _random_states(64)
    batch, _ = expert.predict(states)
    rows = np.stack([expert.predict(s)[0] for s in states])
    assert batch.shape == (64, 2) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, rows)
    np.testing.assert_array_equal(expert.predict(states)[0], batch)  # same state, same action
    assert np.all(np.isfinite(batch)) and np.all((batch >= 0) & (batch <= 512))


def test_randomized_approach_is_seeded_and_varies_per_episode():
    states = _random_states(32, seed=1)
    a = P.PushTExpert(None, randomize_approach=True, seed=5)
    b = P.PushTExpert(None, randomize_approach=True, seed=5)
    first = a.predict(states)[0]
    np.testing.assert_array_equal(first, b.predict(states)[0])
    np.testing.assert_array_equal(first, a.predict(states)[0])  # fixed within an episode
    a.reset()
    assert not np.array_equal(first, a.predict(states)[0])


def test_pixels_obs_reads_state_from_env():
    env = make_env("il_toolkit/PushT-v0", obs_type="pixels")
    expert = make_expert("il_toolkit/PushT-v0", env=env)
    reference = P.PushTExpert(None)
    obs, _ = env.reset(seed=2)
    assert obs.shape == (96, 96, 3)
    for _ in range(300):
        action, _ = expert.predict(obs)
        np.testing.assert_array_equal(action, reference.predict(P.sim_state(P.sim_of(env)))[0])
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    assert info["is_success"]
    with pytest.raises(ValueError, match="one observation at a time"):
        expert.predict(np.stack([obs, obs]))
    with pytest.raises(ValueError, match="state observations"):
        P.PushTExpert(None).__class__.from_checkpoint({}, {}, env.observation_space, env.action_space).predict(obs)
    env.close()


def test_save_load_round_trip(tmp_path, state_env):
    expert = P.PushTExpert(state_env, action_noise=2.0, randomize_approach=True, seed=7)
    expert.save(tmp_path / "expert")
    config = load_config(tmp_path / "expert")
    assert config["kind"] == "pusht_expert"
    assert config["config"] == {"action_noise": 2.0, "randomize_approach": True, "seed": 7}
    restored = load(tmp_path / "expert")
    assert isinstance(restored, P.PushTExpert) and restored.env is None
    states = _random_states(16, seed=2)
    np.testing.assert_array_equal(restored.predict(states)[0], expert.predict(states)[0])


def test_registered_and_made_by_make_expert():
    assert DEFAULT_EXPERTS["il_toolkit/PushT-v0"] == "pusht"
    assert "il_toolkit/PushT-v0" in EXPERT_REGISTRY.metadata("pusht")["env_ids"]
    expert = make_expert("il_toolkit/PushT-v0")
    assert isinstance(expert, P.PushTExpert)
    assert isinstance(make_expert("PushT-v0", action_noise=1.0), P.PushTExpert)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="action_noise"):
        P.PushTExpert(None, action_noise=-1.0)
    with pytest.raises(ValueError, match="gap"):
        P.PushTControlParams(gap=2.0, margin=4.0)


def test_sb3_evaluate_policy_on_a_vec_env():
    """A batch of state observations from a VecEnv, as SB3's evaluate_policy passes them."""
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: make_env("il_toolkit/PushT-v0") for _ in range(2)])
    venv.seed(0)
    _, lengths = evaluate_policy(
        make_expert("il_toolkit/PushT-v0"), venv, n_eval_episodes=4, return_episode_rewards=True, warn=False
    )
    assert max(lengths) < 300  # every episode ended on success before the time limit
    venv.close()
