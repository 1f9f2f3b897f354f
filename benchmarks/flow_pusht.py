"""Flow-matching policies on PushT (state): scripted demonstrations in, success over 100 seeds out.

Demonstrations: ``PushTExpert`` (the scripted pusher in ``il_toolkit.experts.pusht``) on
``il_toolkit/PushT-v0`` with ``obs_type="state"`` (agent x, y, block x, y, angle), reset
seeds ``0 .. n_demos - 1``. Windows follow diffusion_policy: ``n_obs_steps = 2`` observations,
a ``horizon = 16`` action chunk starting at the first of them (edges padded by repetition),
``n_action_steps = 8`` executed. Evaluation: reset seeds ``100000 + i`` (never seen in
training), 300 steps, success = coverage > 0.95 (the env's own signal), also the mean of each
episode's maximum coverage (the Diffusion Policy paper's metric).

    .venv/bin/python benchmarks/flow_pusht.py [--quick] [--train-minutes M] [--trainers KEY ...]

Writes ``benchmarks/results/flow_pusht.json``. Training runs on the CPU for a fixed wall-clock
budget per trainer (one thread), so the figures are what that budget buys, not a converged
policy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import il_toolkit  # noqa: F401  (registers il_toolkit/PushT-v0)
from il_toolkit.experts.pusht import PushTExpert
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.policies.flow_policy import FlowMatchingPolicy
from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

ENV_ID = "il_toolkit/PushT-v0"
N_OBS, HORIZON, N_ACTION = 2, 16, 8
MAX_STEPS = 300
RESULTS = Path(__file__).resolve().parent / "results" / "flow_pusht.json"


def collect(n_demos: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(states (T, 5), actions (T, 2))`` per demonstration; only successful ones are kept."""
    env = gym.make(ENV_ID, obs_type="state", render_mode=None, max_episode_steps=MAX_STEPS)
    expert = PushTExpert()
    episodes = []
    for seed in range(n_demos):
        obs, _ = env.reset(seed=seed)
        states, actions = [], []
        for _ in range(MAX_STEPS):
            action, _ = expert.predict(obs)
            states.append(obs)
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        if info["is_success"]:
            episodes.append((np.array(states, np.float32), np.array(actions, np.float32)))
    env.close()
    return episodes


def windows(episodes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Observation windows ``(N, N_OBS, 5)`` and action chunks ``(N, HORIZON, 2)``."""
    obs_w, act_w = [], []
    for states, actions in episodes:
        t_len = len(states)
        for t in range(t_len):
            first = t - (N_OBS - 1)
            obs_idx = np.clip(np.arange(first, t + 1), 0, t_len - 1)
            act_idx = np.clip(np.arange(first, first + HORIZON), 0, t_len - 1)
            obs_w.append(states[obs_idx])
            act_w.append(actions[act_idx])
    return np.array(obs_w, np.float32), np.array(act_w, np.float32)


def train(
    key: str, obs: np.ndarray, act: np.ndarray, minutes: float, seed: int, d_model: int, device: str = "cpu"
) -> tuple[FlowMatchingPolicy, dict]:
    torch.manual_seed(seed)
    cls = TRAINER_REGISTRY.get(key)
    spec = FlowModelSpec(action_dim=2, horizon=HORIZON, n_obs_steps=N_OBS, state_dim=5, d_model=d_model, n_heads=4,
                         embedder_layers=2, decoder_layers=3, normalization="min_max")
    models = cls.build_models(spec)
    models["normalizer"].fit(actions=act, states=obs)
    optimizers = cls.build_optimizers(models, lr=1e-3, weight_decay=1e-6)
    trainer = cls(models, optimizers, None, device, generator=torch.Generator(device=device).manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    o_t, a_t = torch.as_tensor(obs), torch.as_tensor(act)
    start, steps, losses = time.perf_counter(), 0, []
    budget = minutes * 60
    while time.perf_counter() - start < budget:
        idx = torch.randint(0, len(o_t), (256,), generator=g)
        progress = (time.perf_counter() - start) / budget
        for o in optimizers.values():  # cosine decay on the wall-clock budget
            for group in o.param_groups:
                group["lr"] = 1e-3 * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
        metrics = trainer.train_step({"observation.state": o_t[idx], "action": a_t[idx]}, 0, 1, steps)
        losses.append(metrics["velocity_loss"])
        steps += 1
    env_space = gym.make(ENV_ID, obs_type="state", render_mode=None)
    policy = FlowMatchingPolicy(key, trainer.models, env_space.observation_space, env_space.action_space,
                                n_action_steps=N_ACTION, n_steps=10, solver="euler", seed=seed, device=device)
    env_space.close()
    info = {"train_steps": steps, "train_seconds": round(time.perf_counter() - start, 1),
            "final_velocity_loss": float(np.mean(losses[-50:]))}
    return policy, info


def evaluate(policy: FlowMatchingPolicy, n_episodes: int, n_steps: int = 10, solver: str = "euler") -> dict:
    """Lockstep rollouts of ``n_episodes`` envs (seeds 100000 + i); returns success and coverage."""
    envs = [gym.make(ENV_ID, obs_type="state", render_mode=None) for _ in range(n_episodes)]
    obs = np.stack([env.reset(seed=100000 + i)[0] for i, env in enumerate(envs)])
    policy.reset()
    policy.n_steps, policy.solver = n_steps, solver
    done = np.zeros(n_episodes, bool)
    success = np.zeros(n_episodes, bool)
    max_cov = np.zeros(n_episodes)
    start = time.perf_counter()
    for _ in range(MAX_STEPS):
        actions, _ = policy.predict(obs)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            obs[i], _, terminated, truncated, info = env.step(actions[i])
            max_cov[i] = max(max_cov[i], info["coverage"])
            success[i] |= bool(info["is_success"])
            done[i] = terminated or truncated
        if done.all():
            break
    for env in envs:
        env.close()
    return {"episodes": n_episodes, "success": float(success.mean()), "avg_max_coverage": float(max_cov.mean()),
            "eval_seconds": round(time.perf_counter() - start, 1), "n_steps": n_steps, "solver": solver}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 demos, 1 minute of training, 20 episodes")
    parser.add_argument("--demos", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--train-minutes", type=float, default=10.0)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--trainers", nargs="*", default=["naive_flow_matching_policy_trainer", "vfp_single_expert_trainer"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for training and sampling (e.g. cuda)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.demos, args.episodes, args.train_minutes = 20, 20, 1.0
    t0 = time.perf_counter()
    episodes = collect(args.demos)
    obs, act = windows(episodes)
    print(f"{len(episodes)}/{args.demos} successful demos, {len(obs)} windows ({time.perf_counter() - t0:.0f} s)")
    results = {"env": ENV_ID, "obs_type": "state", "demos": len(episodes), "windows": len(obs), "quick": args.quick,
               "n_obs_steps": N_OBS, "horizon": HORIZON, "n_action_steps": N_ACTION, "train_minutes": args.train_minutes,
               "d_model": args.d_model, "device": args.device,
               "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": 1},
               "target_success": 0.9, "trainers": {}}
    for key in args.trainers:
        policy, info = train(key, obs, act, args.train_minutes, args.seed, args.d_model, args.device)
        res = evaluate(policy, args.episodes)
        res.update(info)
        res["target_met"] = res["success"] >= 0.9
        results["trainers"][key] = res
        print(f"{key:40s} success {res['success']:.2f}  avg max coverage {res['avg_max_coverage']:.3f}  "
              f"({info['train_steps']} steps in {info['train_seconds']:.0f} s, loss {info['final_velocity_loss']:.4f})")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
