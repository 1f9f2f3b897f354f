"""One small VLA trained on PushT and ALOHA transfer together, against single-task models.

Data (scripted experts, collected once into the default Minari directory):
- PushT: ``lerobot/pusht`` -> ``pusht/expert-pixels-v0`` (96x96 ``top`` camera, agent x, y;
  actions: target x, y in board pixels), instruction "push the T block onto the target";
- ALOHA transfer cube: ``aloha/transfer-cube-top96-v0`` (96x96 ``top`` camera, the 14 joint
  positions; actions: 14 joint targets), instruction "transfer the red cube to the other arm".

Models: the same ``VLAModel("builtin-small", "builtin-small")`` configuration for all three
(per-camera CNN, a 2-layer Llama-style LM over byte tokens, flow head over 16-action chunks,
8 executed per plan). The multi-task model reads a :class:`MultiTaskDataset`, in which each
task owns its own state and action slots (no dimension means board pixels for one task and
radians for the other); the instruction tells it which task it is in. Every model is trained
with VLA BC for ``--train-steps`` optimizer steps per task (the multi-task model for twice as
many, so each task's samples are seen about as often), batch 32, one CPU thread.

Evaluation: ``il_toolkit.evaluation.evaluate`` on reset seeds 1,000,000 + i (never used for
demonstrations), success as each env defines it (PushT: coverage > 0.95; ALOHA: the cube held
by the left gripper off the table at the end). Writes ``benchmarks/results/vla_multitask.json``.

    .venv/bin/python benchmarks/vla_multitask.py [--quick] [--train-steps N] [--eval-episodes N]

What a few CPU minutes buy, not converged policies; reported as measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

import il_toolkit  # noqa: E402,F401
from il_toolkit.config.training_config import ILConfig  # noqa: E402
from il_toolkit.envs import env_entry  # noqa: E402
from il_toolkit.evaluation import evaluate  # noqa: E402
from il_toolkit.model.vla import VLAModel  # noqa: E402
from il_toolkit.train.datasets.collect import collect_dataset  # noqa: E402
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, PushTDataset, create_lerobot_dataloader  # noqa: E402
from il_toolkit.train.datasets.minari_io import dataset_exists  # noqa: E402
from il_toolkit.train.datasets.multitask import MultiTaskDataset  # noqa: E402
from il_toolkit.train.il.vla import VLABehavioralCloning  # noqa: E402

CHUNK = 16
MODEL = dict(chunk_size=CHUNK, n_action_steps=8, vision_width=16)
PUSHT = dict(env_id="il_toolkit/PushT-v0", env_kwargs={"obs_type": "pixels_agent_pos"})
ALOHA = dict(env_id="il_toolkit/AlohaTransferCube-v0", dataset_id="aloha/transfer-cube-top96-v0",
             env_kwargs={"obs_type": "pixels_agent_pos", "cameras": ["top"], "image_size": [96, 96]})


def aloha_dataset(split: str, episodes: int) -> ChunkedEpisodeDataset:
    if not dataset_exists(ALOHA["dataset_id"]):
        print(f"collecting {episodes} ALOHA transfer episodes into {ALOHA['dataset_id']} (once)", flush=True)
        collect_dataset(ALOHA["env_id"], ALOHA["dataset_id"], episodes, env_kwargs=ALOHA["env_kwargs"],
                        only_successful=True, progress=False)
    return ChunkedEpisodeDataset(ALOHA["dataset_id"], split, chunk_size=CHUNK)


def train(name: str, tasks: list[ChunkedEpisodeDataset], steps: int, args: argparse.Namespace) -> tuple[VLAModel, dict]:
    data = MultiTaskDataset(tasks)
    model = VLAModel.for_dataset(data, seed=args.seed, **MODEL)
    config = ILConfig.behavioral_cloning(bc_epochs=10_000, batch_size=32, learning_rate=3e-4, weight_decay=1e-4,
                                         output_dir=f"{args.output_dir}/{name}", seed=args.seed)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, dataset_name=name, progress=False)
    results = trainer.train(create_lerobot_dataloader(data, batch_size=32, seed=args.seed), max_steps=steps)
    info = {"tasks": data.tasks(), "task_slots": data.task_slots, "train_samples": len(data), "train_steps": steps,
            "samples_per_second": results["samples_per_second"], "train_seconds": results["train_seconds"],
            "final_train_loss": results["final_train_loss"], "parameters": trainer.policy.num_parameters()}
    print(f"[{name}] {info['train_steps']} steps on {len(data)} samples in {info['train_seconds']:.0f} s "
          f"({info['samples_per_second']:.0f} samples/s), final loss {info['final_train_loss']:.3f}", flush=True)
    return trainer.policy, info


def evaluate_task(model: VLAModel, task: dict, instruction: str, episodes: int) -> dict:
    from il_toolkit.envs import make_env

    env = make_env(task["env_id"], **task["env_kwargs"])
    view = model.for_task(instruction, env.observation_space, env.action_space)
    env.close()
    result = evaluate(view, task["env_id"], n_episodes=episodes, env_kwargs=task["env_kwargs"])
    print(f"  {task['env_id']}: {result.summary()}", flush=True)
    return {"seconds": result.seconds, **result.aggregates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 steps, 3 episodes per task, 4 ALOHA demos")
    parser.add_argument("--train-steps", type=int, default=1500, help="optimizer steps per task")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--aloha-episodes", type=int, default=50, help="ALOHA demonstrations to collect")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="output/bench/vla_multitask")
    args = parser.parse_args()
    if args.quick:
        args.train_steps, args.eval_episodes = 60, 3
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.perf_counter()

    pusht_train = PushTDataset(split="train", chunk_size=CHUNK, dataset="lerobot/pusht")
    aloha_train = aloha_dataset("train", args.aloha_episodes)
    instructions = {"pusht": pusht_train.instruction, "aloha": aloha_train.instruction}
    assert instructions["pusht"] == env_entry(PUSHT["env_id"]).instruction
    runs = {"pusht_only": [pusht_train], "aloha_only": [aloha_train], "multitask": [pusht_train, aloha_train]}
    envs = {"pusht": PUSHT, "aloha": ALOHA}
    results: dict = {"training": {}, "success": {}}
    for name, tasks in runs.items():
        model, info = train(name, tasks, args.train_steps * len(tasks), args)
        results["training"][name] = info
        for key, task in envs.items():
            if instructions[key] in info["tasks"]:
                results["success"].setdefault(key, {})[name] = evaluate_task(model, task, instructions[key], args.eval_episodes)

    print("\nsuccess (%)       single-task   multi-task")
    for key in envs:
        row = results["success"][key]
        single = next(v for k, v in row.items() if k != "multitask")
        print(f"  {key:<15} {single['pc_success']:>11.1f} {row['multitask']['pc_success']:>12.1f}")
    figures = {
        "setup": {"instructions": instructions, "model": MODEL, "batch_size": 32, "learning_rate": 3e-4,
                  "train_steps_per_task": args.train_steps, "eval_episodes": args.eval_episodes,
                  "pusht_train_episodes": len(pusht_train.episodes), "aloha_train_episodes": len(aloha_train.episodes),
                  "aloha_env_kwargs": ALOHA["env_kwargs"], "torch_threads": 1, "device": "cpu", "quick": args.quick},
        **results,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "gpu": "not measured: no GPU was lent to this session",
    }
    write_results("vla_multitask", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
