"""One small VLA trained on PushT and ALOHA transfer together, against single-task models.

Data (scripted experts, collected once into the default Minari directory), ``--observations pixels``
(the default):
- PushT: ``lerobot/pusht`` -> ``pusht/expert-pixels-v0`` (96x96 ``top`` camera, agent x, y;
  actions: target x, y in board pixels), instruction "push the T block onto the target";
- ALOHA transfer cube: ``aloha/transfer-cube-top96-v0`` (96x96 ``top`` camera, the 14 joint
  positions; actions: 14 joint targets), instruction "transfer the red cube to the other arm".

``--observations state``: the envs' full states instead (PushT 200 demonstrations, 5 entries;
ALOHA 50, 35 entries), no camera, each task's state read through its env's feature pipeline in its
own slots (:class:`~il_toolkit.features.task_slots.SlottedFeatures`, what every other learner of
the env sees), the flow family's MLP velocity net as the action head, batch 256, learning rate
1e-3; PushT learns and executes the first action of each chunk (horizon 1), ALOHA learns 16 and
executes 8 (what the flow family does best in each). Written to ``vla_multitask_state.json``.

Models: the same ``VLAModel("builtin-small", "builtin-small")`` configuration for all three
(pixels: per-camera CNN, a 2-layer Llama-style LM over byte tokens, flow head over 16-action
chunks, 8 executed per plan). The multi-task model reads a :class:`MultiTaskDataset`, in which each
task owns its own state and action slots (no dimension means board pixels for one task and
radians for the other); the instruction tells it which task it is in. Every model is trained
with VLA BC for ``--train-steps`` optimizer steps per task (the multi-task model for twice as
many, so each task's samples are seen about as often), one CPU thread.

Evaluation: ``il_toolkit.evaluation.evaluate`` on reset seeds 1,000,000 + i (never used for
demonstrations), success as each env defines it (PushT: coverage > 0.95; ALOHA: the cube held
by the left gripper off the table at the end). Writes ``benchmarks/results/vla_multitask.json``.

    .venv/bin/python benchmarks/vla_multitask.py [--observations pixels|state] [--quick] [--train-steps N]

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
SETTINGS = {  # per --observations: model fields, batch size, learning rate, executed actions per task
    "pixels": {"model": dict(chunk_size=CHUNK, n_action_steps=8, vision_width=16), "batch_size": 32,
               "learning_rate": 3e-4, "action_steps": {}},
    "state": {"model": dict(chunk_size=CHUNK, n_action_steps=8, velocity_net="mlp"), "batch_size": 256,
              "learning_rate": 1e-3, "action_steps": {"pusht": (1, 1), "aloha": (16, 8)}},  # (horizon, executed)
}
TASKS = {
    "pixels": {"pusht": dict(env_id="il_toolkit/PushT-v0", env_kwargs={"obs_type": "pixels_agent_pos"}),
               "aloha": dict(env_id="il_toolkit/AlohaTransferCube-v0", dataset_id="aloha/transfer-cube-top96-v0",
                             env_kwargs={"obs_type": "pixels_agent_pos", "cameras": ["top"], "image_size": [96, 96]})},
    "state": {"pusht": dict(env_id="il_toolkit/PushT-v0", dataset_id="bench/pusht-expert-200-v0", episodes=200,
                            env_kwargs={"obs_type": "state"}),
              "aloha": dict(env_id="il_toolkit/AlohaTransferCube-v0", dataset_id="bench/aloha_transfer-expert-50-v0",
                            episodes=50, env_kwargs={"obs_type": "state"})},
}


def collected(task: dict, split: str, episodes: int) -> ChunkedEpisodeDataset:
    """The task's expert demonstrations (collected once), chunked."""
    if not dataset_exists(task["dataset_id"]):
        print(f"collecting {episodes} {task['env_id']} episodes into {task['dataset_id']} (once)", flush=True)
        collect_dataset(task["env_id"], task["dataset_id"], episodes, env_kwargs=task["env_kwargs"],
                        only_successful=True, num_envs=2, progress=False)
    return ChunkedEpisodeDataset(task["dataset_id"], split, chunk_size=CHUNK)


def task_options(tasks: list[ChunkedEpisodeDataset], args: argparse.Namespace) -> dict | None:
    """State runs: each task's feature pipeline and executed actions (None for pixels)."""
    if args.observations != "state":
        return None
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features

    options = {}
    for data in tasks:
        key, task = next((k, t) for k, t in TASKS["state"].items() if t["dataset_id"] == data.dataset_id)
        features = default_state_features(make_env(task["env_id"], **task["env_kwargs"]))
        horizon, executed = SETTINGS["state"]["action_steps"][key]
        options[data.instruction] = {"features": features.to_json(), "horizon": horizon, "n_action_steps": executed}
    return options


def train(name: str, tasks: list[ChunkedEpisodeDataset], steps: int, args: argparse.Namespace) -> tuple[VLAModel, dict]:
    settings = SETTINGS[args.observations]
    data = MultiTaskDataset(tasks)
    model = VLAModel.for_dataset(data, seed=args.seed, task_options=task_options(tasks, args), **settings["model"])
    config = ILConfig.behavioral_cloning(bc_epochs=10_000, batch_size=settings["batch_size"],
                                         learning_rate=settings["learning_rate"], weight_decay=1e-4,
                                         output_dir=f"{args.output_dir}/{args.observations}/{name}", seed=args.seed)
    trainer = VLABehavioralCloning(model=model, config=config, use_wandb=False, dataset_name=name, progress=False)
    results = trainer.train(create_lerobot_dataloader(data, batch_size=settings["batch_size"], seed=args.seed),
                            max_steps=steps)
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
    parser.add_argument("--observations", choices=sorted(SETTINGS), default="pixels")
    parser.add_argument("--quick", action="store_true", help="60 steps, 3 episodes per task")
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

    envs = TASKS[args.observations]
    if args.observations == "pixels":
        pusht_train = PushTDataset(split="train", chunk_size=CHUNK, dataset="lerobot/pusht")
        aloha_train = collected(envs["aloha"], "train", args.aloha_episodes)
    else:
        pusht_train = collected(envs["pusht"], "train", envs["pusht"]["episodes"])
        aloha_train = collected(envs["aloha"], "train", envs["aloha"]["episodes"])
    instructions = {"pusht": pusht_train.instruction, "aloha": aloha_train.instruction}
    assert instructions["pusht"] == env_entry(envs["pusht"]["env_id"]).instruction
    runs = {"pusht_only": [pusht_train], "aloha_only": [aloha_train], "multitask": [pusht_train, aloha_train]}
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
    settings = SETTINGS[args.observations]
    figures = {
        "setup": {"observations": args.observations, "instructions": instructions, "model": settings["model"],
                  "batch_size": settings["batch_size"], "learning_rate": settings["learning_rate"],
                  "executed_actions_per_plan": settings["action_steps"] or settings["model"]["n_action_steps"],
                  "train_steps_per_task": args.train_steps, "eval_episodes": args.eval_episodes,
                  "pusht_train_episodes": len(pusht_train.episodes), "aloha_train_episodes": len(aloha_train.episodes),
                  "aloha_env_kwargs": envs["aloha"]["env_kwargs"], "torch_threads": 1, "device": "cpu",
                  "quick": args.quick},
        **results,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "gpu": "not measured: no GPU was used for this run",
    }
    name = "vla_multitask" + ("_state" if args.observations == "state" else "") + ("_quick" if args.quick else "")
    write_results(name, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
