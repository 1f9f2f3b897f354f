"""Why plain DAgger's chunk targets mislead a chunked learner, measured on ALOHA insertion.

A flow-matching learner over chunks of 8 actions is fitted on 10 expert demonstrations (BC, as
DAgger's first learner) and rolled out on unseen seeds. At each step where it plans, three chunks
of the next ``--horizon`` actions are compared (RMS over the 12 arm joints, rad, at each position
of the chunk, averaged over the plans):

- ``visited``: the expert's labels of the states the learner went on to visit (the target plain
  DAgger built before expert chunks: ``--dagger_chunk_labels visited``);
- ``expert``: what the expert does from that state, acted out in a branch of the simulation
  (:class:`~il_toolkit.train.il.expert_chunks.ExpertChunks`; the target ``expert_chunks`` gives);
- ``learner``: the actions the learner itself executed.

Writes ``benchmarks/results/chunk_labels.json``.

    .venv/bin/python benchmarks/chunk_labels.py          # about 4 minutes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402

ENV_ID = "il_toolkit/AlohaInsertion-v0"
ARM_JOINTS = np.r_[0:6, 7:13]


def rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(H,)``: RMS over the arm joints of two chunks ``(H, 14)``."""
    return np.sqrt(((a - b)[:, ARM_JOINTS] ** 2).mean(-1))


def compare_along_rollout(env, expert, learner, seed: int, horizon: int, every: int) -> list[dict[str, np.ndarray]]:
    """Roll the learner out for one episode; at every ``every``-th step, the three chunks' distances."""
    from il_toolkit.train.il.expert_chunks import ExpertChunks

    expert_chunk = ExpertChunks(env, expert, horizon, every=1)  # the expert's next `horizon` actions, in a branch
    observation, _ = env.reset(seed=seed)
    learner.reset()
    branches, labels, actions = {}, [], []
    for t in range(env.spec.max_episode_steps):
        if t % every == 0:
            branches[t] = expert_chunk.label(observation).acts
        labels.append(np.asarray(expert.predict(observation, deterministic=True)[0]))
        actions.append(np.asarray(learner.predict(observation, deterministic=True)[0]))
        observation, _, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            break
    labels, actions = np.stack(labels), np.stack(actions)
    return [{"visited_vs_expert": rms(labels[t:t + horizon], chunk), "learner_vs_expert": rms(actions[t:t + horizon], chunk),
             "visited_vs_learner": rms(labels[t:t + horizon], actions[t:t + horizon])}
            for t, chunk in branches.items() if t + horizon <= len(labels)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demos", type=int, default=10, help="demonstrations the learner is fitted on")
    parser.add_argument("--epochs", type=int, default=600, help="passes over the windows, batch 256")
    parser.add_argument("--horizon", type=int, default=16, help="chunk positions compared")
    parser.add_argument("--episodes", type=int, default=6, help="learner rollouts (unseen seeds from 1,000,000)")
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    import torch

    from il_toolkit import BehavioralCloning, ILConfig, collect_dataset, load_demonstrations
    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.policies import load

    torch.set_num_threads(1)
    dataset = f"bench/aloha_insertion-expert-{args.demos}-v0"
    collect_dataset(ENV_ID, dataset, args.demos, seed=0, num_envs=1, progress=False, if_missing=True)
    env = make_env(ENV_ID)
    with tempfile.TemporaryDirectory() as tmp:
        config = ILConfig.dagger(policy_type="flow", action_chunk_size=8, bc_epochs=args.epochs, batch_size=256,
                                 learning_rate=1e-3, seed=0, use_wandb=False, bc_validation_split=0.0, output_dir=tmp)
        start = time.perf_counter()
        result = BehavioralCloning(env, config, progress=False).train(
            trajectories=load_demonstrations(dataset, env=env), evaluate_policy=False)
        fit_seconds = time.perf_counter() - start
        learner = load(result["policy_path"])
    expert = make_expert(ENV_ID, env)
    rows = [row for seed in range(1_000_000, 1_000_000 + args.episodes)
            for row in compare_along_rollout(env, expert, learner, seed, args.horizon, every=8)]
    curves = {key: np.mean([r[key] for r in rows], axis=0).round(4).tolist() for key in rows[0]}
    for key, curve in curves.items():
        print(f"{key:>20}: " + ", ".join(f"{curve[k]:.3f}" for k in (0, 1, 3, 7, args.horizon - 1)) +
              f" rad at chunk positions 1, 2, 4, 8, {args.horizon}")
    write_results("chunk_labels", {
        "settings": {"env_id": ENV_ID, "demos": args.demos, "epochs": args.epochs, "learner": "flow matching, chunks of "
                     "8 executed in full, env features", "horizon_compared": args.horizon, "episodes": args.episodes,
                     "eval_seed": 1_000_000, "joints": "12 arm joints (grippers left out)"},
        "plans_compared": len(rows), "fit_seconds": round(fit_seconds, 1),
        "rms_rad_by_chunk_position": curves,
    })


if __name__ == "__main__":
    main()
