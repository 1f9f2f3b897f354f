"""Single-expert VFP on ALOHA transfer cube from three small cameras, end to end on the CPU.

Demonstrations: the scripted ``aloha_transfer_cube`` expert on ``il_toolkit/AlohaTransferCube-v0``
with ``obs_type="pixels_agent_pos"``, cameras ``head`` (the package's ``top``), ``left_wrist``
and ``right_wrist`` at ``image_size = (48, 64)``, collected once with
``il_toolkit.train.datasets.collect.collect_dataset`` (``only_successful=True``, reset seeds
0, 1, ...) into the Minari dataset ``bench/aloha-transfer-pix3-48x64-<n>-v0`` under
``benchmarks/.cache/minari``. The env's wrist cameras feed the VFP trainer's ``left`` and
``right`` inputs (``vfp_spec``'s camera names) through the policy's ``observation_keys``;
``agent_pos`` (14 joint positions) is the state.

Training: ``il_toolkit.train.imitation_learning.loop.train_flow_policy`` (the loop behind
``il-toolkit train flow``) for a wall-clock budget on one torch thread. The loop counts
steps, so the budget is spent in rounds resumed from its own checkpoint (``resume=True``):
a short first round measures the step time, the next rounds fill the remaining budget.
Windows: ``n_obs_steps = 2``, ``horizon = 16``, ``n_action_steps = 8`` executed.

Evaluation: ``il_toolkit.evaluation.evaluate`` on reset seeds ``1_000_000 + i`` (never a
demonstration seed), 400 steps, success = the env's strict end-state check at any step;
also the mean of each episode's maximum reward (the package's 0-4 stage).

    .venv/bin/python benchmarks/flow_aloha.py [--quick] [--minutes M] [--demos N] [--episodes N]
        [--trainers vfp_single_expert_trainer ...] [--device cpu]

Writes ``benchmarks/results/flow_aloha.json`` (``flow_aloha_quick.json`` with ``--quick``).
On the CPU budget these figures are what ten minutes buy, not a converged policy (ACT
reaches 86-90 % with 50 demos at 480x640 after hours on a GPU).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402

ENV_ID = "il_toolkit/AlohaTransferCube-v0"
IMAGE_SIZE = (48, 64)
ENV_CAMERAS = ("head", "left_wrist", "right_wrist")
# VFP's camera names (vfp_single_expert.trainer.VFP_CAMERAS) -> where they are in the observation
OBSERVATION_KEYS = {
    "observation.images.head": "pixels/head",
    "observation.images.left": "pixels/left_wrist",
    "observation.images.right": "pixels/right_wrist",
    "observation.state": "agent_pos",
}
N_OBS, HORIZON, N_ACTION, ODE_STEPS = 2, 16, 8, 10
EVAL_SEED = 1_000_000


def env_kwargs(depth: bool) -> dict:
    # lists, not tuples: they are compared with the dataset's stored (JSON) kwargs when a collection resumes
    return {"obs_type": "pixels_agent_pos", "cameras": list(ENV_CAMERAS), "image_size": list(IMAGE_SIZE), "depth": depth}


def dataset_id(n_demos: int, depth: bool) -> str:
    return f"bench/aloha-transfer-pix3-{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}{'-depth' if depth else ''}-{n_demos}-v0"


def train_for(key: str, demos, env, minutes: float, args, depth: bool) -> tuple[object, dict]:
    """``train_flow_policy`` in resumed rounds until ``minutes`` of wall clock are spent."""
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.imitation_learning.vfp_single_expert.trainer import VFP_CAMERAS

    keys = dict(OBSERVATION_KEYS)
    spec_fields = {"horizon": HORIZON, "n_obs_steps": N_OBS, "d_model": args.d_model, "cameras": VFP_CAMERAS,
                   "depth_cameras": ()}
    if depth:
        keys["observation.depth.head"] = "depth/head"
        spec_fields["depth_cameras"] = ("head",)
    policy_options = {"n_action_steps": N_ACTION, "n_steps": ODE_STEPS, "solver": "euler", "observation_keys": keys,
                      "device": args.device}
    losses: list[float] = []
    step_times: list[float] = []
    last = [time.perf_counter()]
    round_start = [0]

    def log(metrics: dict, step: int) -> None:
        now = time.perf_counter()
        if step != round_start[0]:  # a round's first step also pays for building its dataset: not a step time
            step_times.append(now - last[0])
        last[0] = now
        losses.append(float(metrics["velocity_loss"]))

    budget = minutes * 60.0
    checkpoint = Path(tempfile.mkdtemp(prefix=f"flow_aloha_{key}_"))
    start = time.perf_counter()
    steps, rounds, policy = 0, 0, None
    try:
        while True:
            elapsed = time.perf_counter() - start
            if rounds == 0:
                target = args.calibration_steps
            else:
                per_step = float(np.median(step_times))
                overhead = elapsed / rounds - per_step * steps / rounds  # dataset build + checkpoint per round
                more = int((budget - elapsed - overhead) / per_step)
                if more < 1:
                    break
                target = steps + more
            last[0], round_start[0] = time.perf_counter(), steps
            policy = train_flow_policy(
                key, demos, env.observation_space, env.action_space, steps=target, batch_size=args.batch_size,
                learning_rate=args.learning_rate, seed=args.seed, spec_fields=spec_fields,
                policy_options=policy_options, log=log, checkpoint_dir=checkpoint, resume=True, device=args.device,
            )
            steps, rounds = target, rounds + 1
            if rounds >= 2 and budget - (time.perf_counter() - start) < 2 * float(np.median(step_times)):
                break
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    pure = float(np.sum(step_times)) if step_times else float("nan")
    info = {
        "train_steps": steps,
        "train_rounds": rounds,
        "train_seconds": round(seconds, 1),
        "seconds_in_steps": round(pure, 1),  # sum of step times, each round's first step left out
        "batch_size": args.batch_size,
        "train_samples_per_s": round(args.batch_size * len(step_times) / pure, 1) if step_times else None,
        "final_velocity_loss": float(np.mean(losses[-20:])),
        "first_velocity_loss": float(losses[0]),
    }
    return policy, info


def ms_per_chunk(policy, demos, n: int = 20) -> float:
    """Median ms of one ``predict_chunk`` (batch 1, ``ODE_STEPS`` Euler steps) on demo windows."""
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    data = WindowDataset.from_trajectories(demos[:1], policy)
    times = []
    for i in range(n + 2):
        window = {k: v for k, v in data.batch(torch.tensor([50 + i])).items() if k != "action"}
        t = time.perf_counter()
        policy.predict_chunk(window)
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times[2:])), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 demos, 1 minute of training, 3 evaluation episodes")
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes (seeds 1_000_000 + i)")
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget per trainer")
    parser.add_argument("--trainers", nargs="*", default=["vfp_single_expert_trainer"],
                        help="vfp_single_expert_trainer and/or vfp_single_expert_trainer_depth")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--calibration-steps", type=int, default=10, help="steps of the first (timing) round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="torch device for training and sampling (e.g. cuda)")
    args = parser.parse_args()
    if args.quick:
        args.demos, args.episodes, args.minutes = 4, 3, 1.0
    torch.set_num_threads(1)
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.minari_io import dataset_exists, dataset_metadata, load_demonstrations, open_dataset

    depth = any(k.endswith("_depth") for k in args.trainers)
    name = dataset_id(args.demos, depth)
    t0 = time.perf_counter()
    collection = None
    if not dataset_exists(name) or not dataset_metadata(open_dataset(name)).get("il_toolkit_complete", True):
        report = collect_dataset(ENV_ID, name, args.demos, seed=0, only_successful=True, env_kwargs=env_kwargs(depth),
                                 progress=True)
        collection = {"seconds": round(report.seconds, 1), "steps_per_s": round(report.steps_per_second, 1),
                      "dropped_seeds": len(report.dropped)}
    env = make_env(ENV_ID, **env_kwargs(depth))
    demos = load_demonstrations(name, env=env)
    n_steps = int(sum(len(d.acts) for d in demos))
    print(f"{len(demos)} demos, {n_steps} steps from {name} ({time.perf_counter() - t0:.0f} s"
          f"{', collected now' if collection else ', cached'})")
    results = {
        "env": ENV_ID, "env_kwargs": env_kwargs(depth), "dataset": name, "demos": len(demos), "demo_steps": n_steps,
        "collection": collection, "quick": args.quick, "n_obs_steps": N_OBS, "horizon": HORIZON,
        "n_action_steps": N_ACTION, "ode_steps": ODE_STEPS, "solver": "euler", "train_minutes": args.minutes,
        "d_model": args.d_model, "device": args.device, "torch_threads": torch.get_num_threads(),
        "eval_seeds": f"{EVAL_SEED} .. {EVAL_SEED + args.episodes - 1}", "reference": "ACT (50 demos, 480x640, GPU): 86-90 %",
        "gpu_note": ("not run at full size (480x640, 50 demos, hours of training) on a GPU: none was used for this "
                     "run; the figures below are a CPU smoke-scale run"),
        "trainers": {},
    }
    for key in args.trainers:
        policy, info = train_for(key, demos, env, args.minutes, args, depth=key.endswith("_depth"))
        load_after_training = os.getloadavg()
        start = time.perf_counter()
        result = evaluate(policy, env, n_episodes=args.episodes, seed=EVAL_SEED, progress=True)
        row = {**info, "pc_success": result.aggregates["pc_success"], "avg_max_reward": result.aggregates["avg_max_reward"],
               "mean_return": result.aggregates["mean_return"], "episodes": args.episodes,
               "eval_seconds": round(time.perf_counter() - start, 1), "ms_per_action_chunk": ms_per_chunk(policy, demos),
               "load_average_after_training": load_after_training, "load_average_after_eval": os.getloadavg(),
               "max_reward_per_episode": [e.max_reward for e in result.episodes]}
        results["trainers"][key] = row
        print(f"{key}: success {row['pc_success']:.0f}% over {args.episodes} episodes, avg max reward "
              f"{row['avg_max_reward']:.2f}; {info['train_steps']} steps ({info['train_rounds']} rounds) in "
              f"{info['train_seconds']:.0f} s, {info['train_samples_per_s']} samples/s, velocity loss "
              f"{info['first_velocity_loss']:.3f} -> {info['final_velocity_loss']:.3f}; {row['ms_per_action_chunk']} ms "
              f"per chunk; load average {os.getloadavg()[0]:.2f}")
    env.close()
    results["load_average"] = os.getloadavg()
    write_results("flow_aloha" + ("_quick" if args.quick else ""), results)


if __name__ == "__main__":
    main()
