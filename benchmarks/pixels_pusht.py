"""PushT from 96x96 pixels + agent position on a CPU: a state estimator in front of a state policy.

Everything goes through the public API, as a user's script would:

1. ``collect_dataset`` records 200 scripted-expert demonstrations of
   ``il_toolkit/PushT-v0`` with ``obs_type="pixels_agent_pos"``; the env's full state (block
   pose) is recorded beside each observation (``load_states``).
2. A flow-matching policy (``naive_flow_matching_policy_trainer``, MLP velocity net, horizon 1,
   the T block's task frame) trains on the recorded *states* (``state_trajectories``).
3. ``train_estimated_state_policy`` fits a keypoint CNN that reads the state off the image
   (trained on the first 90% of the episodes; the last 10% give its errors) and puts it in front of
   the state policy.
4. ``evaluate_checkpoint`` on 100 reset seeds from 1,000,000 (never used for demonstrations),
   in the *pixel* env: the policy sees pixels and the agent position only.

The recorded state is training-time supervision (the simulator's privileged information); a
method that learns from pixels alone (LeRobot's diffusion policy: 63.8% on PushT images from
human demonstrations, about 7 GPU hours) does without it, so the comparison is not like for like.
Figures: success %, mean max coverage, CPU seconds of each training phase (one thread),
training images/s, the estimator's held-out errors (board units, degrees), ms per action.

    .venv/bin/python benchmarks/pixels_pusht.py [--quick] [--estimator-steps N] [--policy-steps N]

Writes ``benchmarks/results/pixels_pusht.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402

ENV_ID = "il_toolkit/PushT-v0"
PIXELS = {"obs_type": "pixels_agent_pos"}
TRAINER = "naive_flow_matching_policy_trainer"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--demos", type=int, default=200)
    parser.add_argument("--policy-steps", type=int, default=6000, help="flow policy steps (batch 256)")
    parser.add_argument("--estimator-steps", type=int, default=3000, help="state estimator steps (batch 64)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 demos, 300 + 200 steps, 10 episodes")
    parser.add_argument("--name", default="pixels_pusht", help="results file name")
    return parser.parse_args()


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def action_latency_ms(policy, observation, repeats: int = 50) -> float:
    for _ in range(3):
        policy.predict(observation)
    start = time.perf_counter()
    for _ in range(repeats):
        policy.predict(observation)
    return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    args = parse_args()
    if args.quick:
        args.demos, args.policy_steps, args.estimator_steps, args.eval_episodes = 20, 300, 200, 10
    torch.set_num_threads(1)
    import il_toolkit  # noqa: F401
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.minari_io import load_demonstrations, load_states
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.state_estimation import state_trajectories, train_estimated_state_policy

    dataset = f"bench/pusht-pixels-expert-{args.demos}-v0"
    pixel_env, state_env = make_env(ENV_ID, **PIXELS), make_env(ENV_ID)
    collected = collect_dataset(ENV_ID, dataset, args.demos, env_kwargs=PIXELS, num_envs=2, if_missing=True)
    demos, states = load_demonstrations(dataset, pixel_env), load_states(dataset)

    state_policy, policy_wall, policy_cpu = timed(
        train_flow_policy, TRAINER, state_trajectories(demos, states), state_env.observation_space,
        state_env.action_space, steps=args.policy_steps, batch_size=256, learning_rate=1e-3, seed=args.seed,
        spec_fields={"horizon": 1, "n_obs_steps": 1, "velocity_net": "mlp"}, features=default_state_features(state_env),
        policy_options={"n_action_steps": 1})
    print(f"state policy: {args.policy_steps} steps in {policy_cpu:.0f} CPU s", flush=True)
    n_fit = args.demos - max(1, args.demos // 10)  # the last 10% of the episodes measure the estimator's errors
    (policy, report), estimator_wall, estimator_cpu = timed(
        train_estimated_state_policy, demos[:n_fit], states[:n_fit], state_policy, pixel_env.observation_space,
        pixel_env.action_space, validation=(demos[n_fit:], states[n_fit:]), steps=args.estimator_steps, batch_size=64,
        seed=args.seed)
    val = report["validation"]
    print(f"state estimator: {args.estimator_steps} steps in {estimator_cpu:.0f} CPU s; held-out block position error "
          f"{val['mae/2']:.1f}/{val['mae/3']:.1f} board units, angle {np.degrees(val['mae/4']):.1f} deg", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = policy.save(Path(tmp) / "pixels_policy")
        result = evaluate_checkpoint(path, ENV_ID, args.eval_episodes, num_envs=2, env_kwargs=PIXELS)
    a = result.aggregates
    observation, _ = pixel_env.reset(seed=0)
    figures = {
        "setup": {"env": ENV_ID, "env_kwargs": PIXELS, "dataset": dataset, "demos": args.demos,
                  "state_policy": {"trainer": TRAINER, "steps": args.policy_steps, "batch_size": 256, "horizon": 1,
                                   "velocity_net": "mlp", "features": "T block's task frame", "trained_on": "recorded states"},
                  "estimator": {"steps": args.estimator_steps, "batch_size": 64, "config": policy.estimator.config.to_json(),
                                "parameters": sum(p.numel() for p in policy.estimator.parameters()),
                                "trained_on_episodes": args.demos - val["episodes"]},
                  "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000, "torch_threads": 1,
                  "privileged_state": "training only: estimator targets and state-policy inputs; acting reads pixels + agent_pos",
                  "quick": args.quick},
        "collection": {"seconds": round(collected.seconds, 1), "reused": collected.reused},
        "training": {
            "state_policy_cpu_seconds": round(policy_cpu, 1), "state_policy_wall_seconds": round(policy_wall, 1),
            "estimator_cpu_seconds": round(estimator_cpu, 1), "estimator_wall_seconds": round(estimator_wall, 1),
            "total_cpu_minutes": round((policy_cpu + estimator_cpu) / 60, 2),
            "estimator_images_per_second": round(args.estimator_steps * 64 / report["seconds"], 1),
            "estimator_final_loss": report["final_loss"],
        },
        "estimator_validation": {
            "episodes": val["episodes"], "frames": val["frames"],
            "block_xy_mae_board_units": [round(val["mae/2"], 2), round(val["mae/3"], 2)],
            "block_xy_p90_board_units": [round(val["p90/2"], 2), round(val["p90/3"], 2)],
            "block_angle_mae_degrees": round(float(np.degrees(val["mae/4"])), 2),
            "block_angle_p90_degrees": round(float(np.degrees(val["p90/4"])), 2),
            "board_units_per_image_pixel": 512 / 96,
        },
        "evaluation": {"pc_success": a["pc_success"], "avg_max_reward": round(a["avg_max_reward"], 4),
                       "episodes": args.eval_episodes, "seconds": round(result.seconds, 1)},
        "ms_per_action": round(action_latency_ms(policy, observation), 2),
    }
    print(f"PushT pixels: {a['pc_success']:.0f}% success, avg max coverage {a['avg_max_reward']:.3f}, "
          f"{figures['training']['total_cpu_minutes']:.1f} CPU minutes of training, "
          f"{figures['ms_per_action']:.1f} ms per action", flush=True)
    write_results(args.name, figures)


if __name__ == "__main__":
    main()
