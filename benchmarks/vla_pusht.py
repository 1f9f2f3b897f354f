"""A small VLA on PushT pixels + instruction: train briefly with VLA BC, then success over N seeds.

Two ways to read the camera (``--perception``):

- ``tokens`` (the default): each camera image becomes language-model tokens (a small CNN), a
  flow head over chunks of 16 (8 executed) learns the actions end to end from the pixels.
- ``estimator``: a keypoint state estimator reads the block's pose off the image, trained in the
  same loop on the simulator's recorded state (privileged supervision, training only); the
  language model reads that estimate through PushT's state feature pipeline, and an MLP velocity
  net predicts one action at a time. Data: ``bench/pusht-pixels-expert-200-v1`` (the demonstrations
  with recorded states that ``pixels_estimated_state.py`` uses), loaded with
  ``environment_state=True``; results go to ``vla_pusht_estimator.json``.

Data: ``PushTDataset(split="train", chunk_size=16)`` (``lerobot/pusht`` maps to our scripted
expert's Minari dataset ``pusht/expert-pixels-v0``: 96x96 RGB ``top`` camera + agent position,
instruction "push the T block onto the target"). Model: ``VLAModel("builtin-small",
"builtin-small")`` (per-camera CNN, a 2-layer Llama-style language model over byte tokens,
flow-matching head over 16-action chunks, 8 executed per plan). Training: ``VLABehavioralCloning``
for ``--train-steps`` optimizer steps on one CPU thread. Evaluation: ``il_toolkit.evaluation.evaluate``
on reset seeds 1,000,000 + i (never used for demonstrations), 300 steps, success = the env's
coverage > 0.95; also the mean per-episode max coverage, beside a baseline that holds the
agent still on the same seeds (what the start states' coverage alone gives).

Figures: training samples/s, wall-clock, final loss, success %, avg max coverage, and
milliseconds per action chunk (one observation, ``flow_steps`` Euler steps) on this CPU.

    .venv/bin/python benchmarks/vla_pusht.py [--quick] [--train-steps N] [--eval-episodes N]

Writes ``benchmarks/results/vla_pusht.json``. This is what a few CPU minutes buy, not a
converged policy; the numbers are reported as measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

import il_toolkit  # noqa: E402,F401
from il_toolkit.config.training_config import ILConfig  # noqa: E402
from il_toolkit.envs import env_entry  # noqa: E402
from il_toolkit.evaluation import evaluate  # noqa: E402
from il_toolkit.model.vla import VLAModel  # noqa: E402
from il_toolkit.policies import FunctionPolicy  # noqa: E402
from il_toolkit.train.datasets.lerobot_dataset import PushTDataset, create_lerobot_dataloader  # noqa: E402
from il_toolkit.train.il.vla import VLABehavioralCloning, estimated_state_fields  # noqa: E402
from il_toolkit.train.supervised import evaluate_loader_loss  # noqa: E402

ENV_ID = "il_toolkit/PushT-v0"
ENV_KWARGS = {"obs_type": "pixels_agent_pos"}
MODEL = dict(state_dim=2, chunk_size=16, n_action_steps=8, vision_width=16)
ESTIMATOR_DATASET = "bench/pusht-pixels-expert-200-v1"  # collected by pixels_estimated_state.py, with the states
PERCEPTION_DEFAULTS = {  # steps, batch size, learning rate
    "tokens": (1200, 32, 3e-4),
    "estimator": (3000, 256, 1e-3),
}


def datasets(perception: str, dataset: str | None) -> tuple[PushTDataset, PushTDataset, int]:
    """Train and validation splits, and the chunk size, for the perception mode."""
    if perception == "tokens":
        chunk = MODEL["chunk_size"]
        return tuple(PushTDataset(split=split, chunk_size=chunk, dataset=dataset or "lerobot/pusht")
                     for split in ("train", "val")), chunk
    from il_toolkit.train.datasets.collect import collect_dataset

    if dataset is None:  # a dataset given by id is used as it is
        dataset = ESTIMATOR_DATASET
        collect_dataset(ENV_ID, dataset, 200, env_kwargs=ENV_KWARGS, num_envs=2, if_missing=True)
    chunk = estimated_state_fields(ENV_ID)["chunk_size"]  # PushT: 1, as train bc --estimate_state
    return tuple(PushTDataset(split=split, chunk_size=chunk, dataset=dataset, environment_state=True)
                 for split in ("train", "val")), chunk


def build_model(perception: str, train_set: PushTDataset, seed: int) -> VLAModel:
    if perception == "tokens":
        return VLAModel("builtin-small", "builtin-small", action_dim=2, observation_space=train_set.observation_space,
                        action_space=train_set.action_space, seed=seed, **MODEL)
    return VLAModel.for_dataset(train_set, seed=seed, **estimated_state_fields(ENV_ID))  # the state env's pipeline


def chunk_latency_ms(policy: VLAModel, dataset: PushTDataset, repeats: int = 30) -> dict[str, float]:
    """Median / p90 wall-clock of one ``predict_chunk`` on a single observation."""
    sample = dataset[0]
    batch = {k: v[None] for k, v in sample.items() if k.startswith("observation.")}
    for _ in range(3):
        policy.predict_chunk(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy.predict_chunk(batch)
        times.append(1000 * (time.perf_counter() - start))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "flow_steps": policy.n_steps, "solver": policy.solver}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--perception", choices=sorted(PERCEPTION_DEFAULTS), default="tokens",
                        help="camera tokens learned end to end, or a state estimator learned from the recorded state")
    parser.add_argument("--dataset", default=None, help=f"default: lerobot/pusht (tokens), {ESTIMATOR_DATASET} (estimator)")
    parser.add_argument("--quick", action="store_true", help="150 steps, 10 episodes")
    parser.add_argument("--train-steps", type=int, default=None, help="default: tokens 1,200, estimator 3,000")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=None, help="default: tokens 32, estimator 256")
    parser.add_argument("--learning-rate", type=float, default=None, help="default: tokens 3e-4, estimator 1e-3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="output/bench/vla_pusht")
    parser.add_argument("--no-baseline", action="store_true", help="skip the hold-still baseline on the same seeds")
    args = parser.parse_args()
    steps, batch_size, learning_rate = PERCEPTION_DEFAULTS[args.perception]
    args.train_steps = args.train_steps or steps
    args.batch_size = args.batch_size or batch_size
    args.learning_rate = args.learning_rate or learning_rate
    if args.quick:
        args.train_steps, args.eval_episodes = 150, 10
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    (train_set, val_set), chunk = datasets(args.perception, args.dataset)
    loader = create_lerobot_dataloader(train_set, batch_size=args.batch_size, seed=args.seed)
    model = build_model(args.perception, train_set, args.seed)
    print(f"{model}\ntrain: {len(train_set)} samples from {len(train_set.episodes)} episodes; "
          f"val: {len(val_set)} samples; instruction {train_set.instruction!r}", flush=True)
    config = ILConfig.behavioral_cloning(bc_epochs=10_000, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                         weight_decay=1e-4, output_dir=args.output_dir, seed=args.seed, eval_episodes=args.eval_episodes)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, dataset_name="pusht", progress=False)
    cpu = time.process_time()
    results = trainer.train(loader, max_steps=args.train_steps)
    train_cpu = time.process_time() - cpu
    val_subset = [batch for i, batch in zip(range(20), create_lerobot_dataloader(val_set, batch_size=64))]
    val_loss = evaluate_loader_loss(trainer.policy, val_subset)["loss"]
    print(f"trained {args.train_steps} steps ({results['train_samples']:.0f} samples) in {results['train_seconds']:.0f} s: "
          f"{results['samples_per_second']:.1f} samples/s, final train loss {results['final_train_loss']:.3f}, "
          f"val loss {val_loss:.3f}; {train_cpu / 60:.1f} CPU minutes", flush=True)

    policy = trainer.policy
    latency = chunk_latency_ms(policy, val_set)
    print(f"action chunk ({chunk} actions, {latency['flow_steps']} {latency['solver']} steps): "
          f"median {latency['median_ms']:.1f} ms, p90 {latency['p90_ms']:.1f} ms on CPU (1 thread)", flush=True)

    policy.set_instruction(env_entry(ENV_ID).instruction)
    result = evaluate(policy, ENV_ID, n_episodes=args.eval_episodes, env_kwargs=ENV_KWARGS)
    print(result.summary(), flush=True)
    baseline = None
    if not args.no_baseline:  # context for the coverage figure: the agent holds still on the same seeds
        hold = FunctionPolicy(lambda obs: np.asarray(obs["agent_pos"], dtype=np.float32), train_set.observation_space,
                              train_set.action_space)
        baseline = evaluate(hold, ENV_ID, n_episodes=args.eval_episodes, env_kwargs=ENV_KWARGS)
        print(f"baseline (agent holds still): {baseline.summary()}", flush=True)

    figures = {
        "setup": {"perception": args.perception, "dataset": train_set.dataset_id, "train_episodes": len(train_set.episodes),
                  "train_samples": len(train_set), "model": repr(policy), "parameters": policy.num_parameters(),
                  "config": {k: v for k, v in policy.config.to_json().items() if k != "pretrained"},
                  "train_steps": args.train_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                  "torch_threads": 1, "device": "cpu", "quick": args.quick},
        "training": {"samples_per_second": results["samples_per_second"], "train_seconds": results["train_seconds"],
                     "train_cpu_minutes": round(train_cpu / 60, 2),
                     "samples_seen": results["train_samples"], "final_train_loss": results["final_train_loss"],
                     "epoch_losses": results["losses"], "val_loss": val_loss},
        "chunk_latency_cpu": latency,
        "evaluation": {"env_id": ENV_ID, "env_kwargs": ENV_KWARGS, "instruction": policy.instruction,
                       "seconds": result.seconds, **result.aggregates},
        "baseline_hold_still": None if baseline is None else baseline.aggregates,
        "gpu": "not measured: no GPU was used for this run",
    }
    write_results("vla_pusht" if args.perception == "tokens" else f"vla_pusht_{args.perception}", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
