"""The VLA on PushT state, before and after it reads the state through the env's feature pipeline.

Everything goes through the public API, as a user's script would: ``collect_dataset`` (200 scripted-
expert demonstrations of ``il_toolkit/PushT-v0``, state observations), ``VLAModel`` (built-in language
model, no camera, the state as its one observation token, chunks of 1 as PushT asks through its
``action_chunk``), ``VLABehavioralCloning.train(max_steps=...)`` and ``evaluate_checkpoint`` on 100
unseen seeds from 1,000,000. The two runs differ only in ``features``: None (the raw board
coordinates, min-max normalised: the VLA before it joined the learner stack) or
``default_state_features(env)`` (what the MLP and the flow family see: the T's task frame, actions
relative to the pusher in the T's frame). A third run, ``feature_pipeline_mlp``, also swaps the
action head's transformer decoder for the flow family's MLP velocity net (``velocity_net="mlp"``).

Figures per run: success %, mean max coverage, CPU seconds of training (one thread), samples/s.

    .venv/bin/python benchmarks/vla_state_features.py [--steps 3000] [--quick] [--runs NAME ...] [--update]

Writes ``benchmarks/results/vla_state_features.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402

ENV_ID = "il_toolkit/PushT-v0"
RUNS = {"raw_state": (False, "transformer"), "feature_pipeline": (True, "transformer"),
        "feature_pipeline_mlp": (True, "mlp")}  # name: (through the feature pipeline, velocity net)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--demos", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps per run")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 demos, 50 steps, 4 episodes")
    parser.add_argument("--output-dir", default="output/bench/vla_state_features")
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--update", action="store_true", help="keep the results file's other runs")
    return parser.parse_args()


def train_and_evaluate(dataset: str, env, features, velocity_net: str, args: argparse.Namespace, name: str) -> dict:
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, create_lerobot_dataloader
    from il_toolkit.train.il.vla import VLABehavioralCloning

    torch.manual_seed(args.seed)
    data = ChunkedEpisodeDataset(dataset, "all", chunk_size=1)
    model = VLAModel(observation_space=env.observation_space, action_space=env.action_space, cameras=(), state_dim=5,
                     chunk_size=1, features=None if features is None else features.to_json(), seed=args.seed,
                     velocity_net=velocity_net)
    config = ILConfig.behavioral_cloning(output_dir=str(Path(args.output_dir) / name), batch_size=args.batch_size,
                                         learning_rate=1e-3, seed=args.seed, bc_epochs=10_000)
    trainer = VLABehavioralCloning(model, config, use_wandb=False, dataset_name=dataset, progress=True)
    cpu = time.process_time()
    result = trainer.train(create_lerobot_dataloader(data, batch_size=args.batch_size, seed=args.seed),
                           max_steps=args.steps)
    cpu = time.process_time() - cpu
    evaluation = evaluate_checkpoint(result["policy_path"], ENV_ID, args.eval_episodes, num_envs=2).aggregates
    figures = {"features": None if features is None else features.to_json(), "velocity_net": velocity_net,
               "steps": args.steps,
               "cpu_seconds": round(cpu, 1), "samples_per_second": round(result["samples_per_second"], 1),
               "final_train_loss": result["final_train_loss"], "parameters": model.num_parameters(),
               "pc_success": evaluation["pc_success"], "avg_max_reward": round(evaluation["avg_max_reward"], 4)}
    print(f"{name}: {figures['pc_success']:.0f}% success, avg max coverage {figures['avg_max_reward']:.3f}, "
          f"{figures['cpu_seconds']:.0f} CPU s", flush=True)
    return figures


def main() -> None:
    args = parse_args()
    if args.quick:
        args.demos, args.steps, args.eval_episodes = 10, 50, 4
    torch.set_num_threads(1)
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.collect import collect_dataset

    dataset = f"bench/pusht-expert-{args.demos}-v0"
    collect_dataset(ENV_ID, dataset, args.demos, num_envs=2, if_missing=True, progress=False)
    env = make_env(ENV_ID)
    name = "vla_state_features" + ("_quick" if args.quick else "")
    runs = {}
    if args.update and (RESULTS_DIR / f"{name}.json").exists():
        runs = json.loads((RESULTS_DIR / f"{name}.json").read_text())["runs"]
    for run in args.runs:
        through_features, velocity_net = RUNS[run]
        features = default_state_features(env) if through_features else None
        runs[run] = train_and_evaluate(dataset, env, features, velocity_net, args, run)
    write_results(name, {
        "setup": {"env": ENV_ID, "dataset": dataset, "demos": args.demos, "batch_size": args.batch_size,
                  "chunk_size": 1, "cameras": [], "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000,
                  "torch_threads": 1, "quick": args.quick},
        "runs": runs})


if __name__ == "__main__":
    main()
