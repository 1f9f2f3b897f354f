"""Where HG-DAgger's simulated person would take over: the distance between the learner's and the
expert's action along the learner's own rollouts, in failed and in successful episodes.

HG-DAgger's simulated person (``SimulatedPerson``) takes over once the learner's action strays
from the expert's by more than ``--dagger_intervention_threshold`` (RMS over dimensions, in
half-ranges of the action space) for a few steps in a row. A threshold is useful where failed
episodes stray past it and successful ones do not. A learner (the flow-matching policy over chunks
of 8 actions that ``interactive_labels.py --learner flow_chunks`` trains) is fitted on ``--demos``
expert demonstrations, or loaded from ``--policy``, and rolled out on unseen seeds; at every step
the expert is asked what it would do (it never acts). Per episode: success, the median and 90th
percentile distance, the share of steps past each threshold, and which action dimensions make up
the squared distance at the steps past 0.1.

Writes ``benchmarks/results/intervention_distances_<env>.json``.

    .venv/bin/python benchmarks/intervention_distances.py                  # ALOHA insertion, 20 demos, ~10 min
    .venv/bin/python benchmarks/intervention_distances.py --policy runs/bc/best --episodes 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402
from interactive_labels import ENVS, FLOW_CHUNKS  # noqa: E402

THRESHOLDS = (0.01, 0.02, 0.03, 0.05, 0.1, 0.2)


def fit_learner(env_name: str, env, demos: int, epochs: int, out: str) -> str:
    """BC with the interactive benchmark's ``flow_chunks`` learner, on its dataset; returns the policy's directory."""
    from il_toolkit import BehavioralCloning, ILConfig, collect_dataset, load_demonstrations

    dataset = f"bench/{env_name}-expert-{demos}-v0"
    collect_dataset(ENVS[env_name][0], dataset, demos, seed=0, num_envs=2, progress=False, if_missing=True)
    config = ILConfig.dagger(**FLOW_CHUNKS[0], bc_epochs=epochs, batch_size=256, learning_rate=1e-3, seed=0,
                             output_dir=out, use_wandb=False, bc_validation_split=0.0)
    result = BehavioralCloning(env, config, progress=False).train(
        trajectories=load_demonstrations(dataset, env=env), evaluate_policy=False)
    return result["policy_path"]


def watch_episode(env, learner, expert, seed: int) -> dict:
    """One learner rollout with the expert asked (never acting) at every step: plain DAgger's actor
    at beta 0, whose labels are the expert's actions at the states the learner visits."""
    from il_toolkit.policies.spaces import half_ranges
    from il_toolkit.rollout import rollout_episode
    from il_toolkit.train.il.gates import BetaGate, action_distance
    from il_toolkit.train.il.interactive import InteractiveActor

    actor = InteractiveActor(expert, learner, BetaGate(0.0, np.random.default_rng(0)))
    episode = rollout_episode(actor, env, seed)
    actions, wanted = np.asarray(episode.actions), np.stack(actor.labels)
    d = np.array([action_distance(a, w, env.action_space) for a, w in zip(actions, wanted)])
    squared = ((actions - wanted).reshape(len(d), -1) / half_ranges(env.action_space)) ** 2
    success = episode.success
    far = squared[d > 0.1]
    share = far.sum(0) / max(far.sum(), 1e-12) if len(far) else np.zeros(squared.shape[1])
    return {"seed": seed, "success": success, "steps": len(d), "median": round(float(np.median(d)), 4),
            "q90": round(float(np.quantile(d, 0.9)), 4),
            "share_above": {str(t): round(float((d > t).mean()), 4) for t in THRESHOLDS},
            "dimension_share_above_0.1": [round(float(s), 3) for s in share]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="aloha_insertion", choices=sorted(ENVS))
    parser.add_argument("--demos", type=int, default=20, help="demonstrations the learner is fitted on")
    parser.add_argument("--epochs", type=int, default=600, help="passes over the windows per fit, batch 256")
    parser.add_argument("--policy", default=None, help="a saved learner to watch instead of fitting one")
    parser.add_argument("--episodes", type=int, default=12, help="rollouts on unseen seeds from 1,000,000")
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    import torch

    from il_toolkit.envs import make_env
    from il_toolkit.experts import make_expert
    from il_toolkit.policies import load

    torch.set_num_threads(1)
    env_id = ENVS[args.env][0]
    env = make_env(env_id)
    with tempfile.TemporaryDirectory() as tmp:
        policy = args.policy or fit_learner(args.env, env, args.demos, args.epochs, tmp)
        learner = load(policy)
    expert = make_expert(env_id, env=env)
    episodes = []
    for seed in range(1_000_000, 1_000_000 + args.episodes):
        episodes.append(watch_episode(env, learner, expert, seed))
        e = episodes[-1]
        print(f"seed {seed}: {'success' if e['success'] else 'failure'}, median {e['median']:.3f}, q90 {e['q90']:.3f}, "
              f"past 0.1: {e['share_above']['0.1']:.0%} of steps", flush=True)
    summary = {}
    for outcome in ("success", "failure"):
        mine = [e for e in episodes if e["success"] == (outcome == "success")]
        summary[outcome] = {"episodes": len(mine), **{f"share_above_{t}": round(float(np.mean(
            [e["share_above"][str(t)] for e in mine])), 4) if mine else None for t in THRESHOLDS}}
        print(f"{outcome}: {len(mine)} episodes; share of steps past " + ", ".join(
            f"{t}: {summary[outcome][f'share_above_{t}']:.1%}" for t in THRESHOLDS if mine))
    write_results(f"intervention_distances_{args.env}", {
        "env_id": env_id, "learner": args.policy or f"flow matching over chunks of 8, BC on {args.demos} demonstrations, "
                                                    f"{args.epochs} passes", "distance": "RMS over action dimensions "
        "in half-ranges (il_toolkit.train.il.gates.action_distance)", "summary": summary, "episodes": episodes})


if __name__ == "__main__":
    main()
