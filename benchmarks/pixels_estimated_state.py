"""Pixels in on a CPU (PushT 96x96, ALOHA three 48x64 cameras): a state estimator in front of a state policy.

Everything goes through the public API, as a user's script would:

1. ``collect_dataset`` records scripted-expert demonstrations with ``obs_type="pixels_agent_pos"``
   (PushT: 200, one 96x96 camera + the pusher's position; ALOHA transfer cube: 50, cameras
   ``head``, ``left_wrist``, ``right_wrist`` at 48x64 + the 14 joint positions); the env's full
   state is recorded beside each observation (``load_states``).
2. A flow-matching policy (``naive_flow_matching_policy_trainer``, MLP velocity net, the env's
   feature pipeline and ``il-toolkit train flow``'s defaults for the state env: PushT horizon 1,
   ALOHA chunks of 16 with 8 executed) trains on the recorded *states* (``state_trajectories``);
   on ALOHA also on two copies of each episode whose cube position carries an estimate's error
   (``--noisy-copies``, ``--state-noise``: a 6 mm per-episode offset and 5 mm per-frame jitter).
3. ``train_estimated_state_policy`` fits a keypoint CNN that reads the state off the images
   (trained on the first 90% of the episodes; the last 10% give its errors) and puts it in front of
   the state policy. With ``--extra-frames N`` (ALOHA's default: 300) it also trains on frames
   rendered by ``expert_frames``: every 5th of the first 100 steps of the expert from N other reset
   seeds (from 2,000,000), the simulator's state as the label, no action used; 45 demonstrations
   show the estimator only 45 cube positions.
4. ``evaluate_checkpoint`` on unseen reset seeds from 1,000,000 (PushT 100, ALOHA 50) in the
   *pixel* env: the policy sees the cameras and the agent's own joints/position only.

The recorded state is training-time supervision (the simulator's privileged information); a
method that learns from pixels alone (LeRobot's diffusion policy: 63.8% on PushT images from
human demonstrations, about 7 GPU hours) does without it, so the comparison is not like for like.
Figures: success %, mean max reward (PushT: coverage), CPU seconds of each training phase (one
thread), training images/s, the estimator's held-out mean/p90 error per estimated state entry, ms
per action.

    .venv/bin/python benchmarks/pixels_estimated_state.py [--env pusht|aloha_transfer] [--quick]

Writes ``benchmarks/results/pixels_<env>.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
from il_toolkit.policies.spaces import add_batch_axis  # noqa: E402

TRAINER = "naive_flow_matching_policy_trainer"
ALOHA_PIXELS = {"obs_type": "pixels_agent_pos", "cameras": ["head", "left_wrist", "right_wrist"], "image_size": [48, 64],
                "depth": False}  # lists: compared with the dataset's stored (JSON) kwargs when a collection resumes
ENVS = {  # env id, camera env kwargs, demonstrations, evaluation episodes, state-policy settings
    "pusht": ("il_toolkit/PushT-v0", {"obs_type": "pixels_agent_pos"}, 200, 100,
              {"steps": 6000, "horizon": 1, "n_action_steps": 1, "estimator_stride": 4, "extra_frames": 0,
               "recombined_frames": 0, "noisy_copies": 0}),
    "aloha_transfer": ("il_toolkit/AlohaTransferCube-v0", ALOHA_PIXELS, 50, 50,
                       {"steps": 20000, "horizon": 16, "n_action_steps": 8, "estimator_stride": 4, "extra_frames": 0,
                        "recombined_frames": 6000, "noisy_copies": None}),  # None: noise_options' default
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="pusht", choices=sorted(ENVS))
    parser.add_argument("--demos", type=int, default=None, help="default: PushT 200, ALOHA 50")
    parser.add_argument("--policy-steps", type=int, default=None, help="flow policy steps, batch 256 (default: PushT "
                        "6,000, ALOHA 20,000; il-toolkit train flow's defaults for the state env are 6,000 and 40,000)")
    parser.add_argument("--estimator-steps", type=int, default=3000, help="state estimator steps (batch 64)")
    parser.add_argument("--extra-frames", type=int, default=None, metavar="EPISODES",
                        help="also train the estimator on the first 100 steps (every 5th frame) of the expert from this "
                             "many other reset seeds (states only; default 0)")
    parser.add_argument("--recombined-frames", type=int, default=None, metavar="N",
                        help="also train the estimator on N frames that pair the arms of one recorded state with the "
                             "objects of another or of a fresh reset (recombined_frames), on which the estimator "
                             "first learns the objects' positions alone for --locate-steps (default: PushT 0, ALOHA "
                             "6,000)")
    parser.add_argument("--locate-steps", type=int, default=2000,
                        help="steps on the recombined frames alone, the loss on the objects' positions, before the "
                             "estimator's --estimator-steps on everything")
    parser.add_argument("--noisy-copies", type=int, default=None, metavar="N",
                        help="the state policy also trains on N copies of each episode whose objects' positions carry "
                             "an estimate's error (--state-noise; default: PushT 0, ALOHA 2)")
    parser.add_argument("--state-noise", type=float, nargs=2, default=None, metavar=("OFFSET", "JITTER"),
                        help="standard deviations of the noisy copies' per-episode offset and per-frame jitter, in the "
                             "state's units (ALOHA: metres; default 0.006 0.005)")
    parser.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                        help="ALOHA's camera size (default 48 64)")
    parser.add_argument("--estimator-stride", type=int, default=None, choices=(2, 4),
                        help="keypoint maps at 1/stride of the image (default 4)")
    parser.add_argument("--eval-episodes", type=int, default=None, help="default: PushT 100, ALOHA 50")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 demos, 300 + 200 steps, 5 episodes")
    parser.add_argument("--name", default=None, help="results file name (default: pixels_<env>, with the image size "
                        "when --image-size is given)")
    parser.add_argument("--output-dir", default="output/bench", help="the trained policy goes to OUTPUT_DIR/NAME/")
    parser.add_argument("--diagnose", action="store_true",
                        help="also evaluate the state policy on the true state, and on the true state with one group "
                             "of entries estimated from the cameras at a time (where the estimate costs success)")
    parser.add_argument("--diagnose-episodes", type=int, default=20, help="episodes per diagnosis")
    parser.add_argument("--evaluate", default=None, metavar="PATH",
                        help="no training: evaluate (and with --diagnose, diagnose) this saved pixel policy; writes "
                             "<name>_evaluation.json")
    parser.add_argument("--state-policy", default=None, metavar="PATH",
                        help="reuse this saved state policy (or a saved pixel policy's) instead of training one; its "
                             "training time is then not counted")
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


class PartlyEstimated:
    """Diagnosis only: acts with the state policy on the env's true state (read from the simulator,
    which a deployed policy cannot do) except the ``estimated`` entries, taken from the estimator."""

    def __init__(self, policy, env, estimated: list[int]) -> None:
        self.policy, self.env, self.estimated = policy, env, estimated
        self.observation_space, self.action_space = policy.observation_space, policy.action_space

    def reset(self) -> None:
        self.policy.reset()

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        true = self.env.unwrapped.state_vector()[None]
        if self.estimated:
            true[:, self.estimated] = self.policy.estimate_state(add_batch_axis(observation))[:, self.estimated]
        action, _ = self.policy.state_policy.predict(true[0], deterministic=deterministic)
        return action, state


def diagnose(policy, env_id: str, pixels: dict, state_env, episodes: int) -> dict:
    """Success of the state policy on the true state, in the state env and in the camera env with
    no entry, or one group of entries, estimated (ALOHA: object pose, joint velocities)."""
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate

    estimated = [i for i in range(policy.estimator.config.state_dim) if i not in policy.estimator.config.copied_dims]
    groups = {"none (true state)": []}
    if env_id.startswith("il_toolkit/Aloha"):
        groups.update({"object pose": [i for i in estimated if i >= 28], "joint velocities": [i for i in estimated if i < 28]})
    else:
        groups["block pose"] = estimated
    out = {"state env, state policy alone": evaluate(policy.state_policy, state_env, episodes).aggregates["pc_success"]}
    camera_env = make_env(env_id, **pixels)
    for name, entries in groups.items():
        result = evaluate(PartlyEstimated(policy, camera_env, entries), camera_env, episodes)
        out[f"camera env, estimated: {name}"] = result.aggregates["pc_success"]
        print(f"diagnosis: estimated {name}: {result.aggregates['pc_success']:.0f}% success", flush=True)
    return out


def evaluate_saved(args: argparse.Namespace, env_id: str, pixels: dict, name: str) -> None:
    """``--evaluate PATH``: success (and the diagnosis) of an already trained pixel policy."""
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.policies import load

    policy = load(args.evaluate)
    a = evaluate_checkpoint(args.evaluate, env_id, args.eval_episodes, num_envs=2, env_kwargs=pixels).aggregates
    print(f"{env_id} from pixels: {a['pc_success']:.0f}% success, avg max reward {a['avg_max_reward']:.3f}", flush=True)
    figures = {"policy": args.evaluate, "env_kwargs": pixels, "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000,
               "evaluation": {"pc_success": a["pc_success"], "avg_max_reward": round(a["avg_max_reward"], 4)}}
    if args.diagnose:
        figures["diagnosis"] = {"episodes": args.diagnose_episodes, **diagnose(
            policy, env_id, pixels, make_env(env_id, obs_type="state"), args.diagnose_episodes)}
    write_results(f"{name}_evaluation", figures)


def main() -> None:
    args = parse_args()
    env_id, pixels, demos_default, episodes_default, policy_settings = ENVS[args.env]
    args.demos = args.demos or demos_default
    args.eval_episodes = args.eval_episodes or episodes_default
    args.policy_steps = args.policy_steps or policy_settings["steps"]
    args.estimator_stride = args.estimator_stride or policy_settings["estimator_stride"]
    if args.extra_frames is None:
        args.extra_frames = policy_settings["extra_frames"]
    if args.recombined_frames is None:
        args.recombined_frames = policy_settings["recombined_frames"]
    if args.noisy_copies is None:
        args.noisy_copies = policy_settings["noisy_copies"]
    if args.image_size:
        if "image_size" not in pixels:
            raise SystemExit(f"--image-size: {env_id}'s pixel observations have one size (96x96)")
        pixels = {**pixels, "image_size": list(args.image_size)}
    if args.quick:
        args.demos, args.policy_steps, args.estimator_steps, args.eval_episodes = 10, 300, 200, 5
        args.recombined_frames, args.locate_steps = min(args.recombined_frames, 100), min(args.locate_steps, 50)
    size_tag = "_%dx%d" % tuple(args.image_size) if args.image_size else ""
    name = args.name or f"pixels_{args.env}{size_tag}" + ("_quick" if args.quick else "")
    torch.set_num_threads(1)
    import il_toolkit  # noqa: F401
    from il_toolkit.envs import make_env
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.datasets.minari_io import load_demonstrations, load_states
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.state_estimation import (
        expert_frames,
        locating_options,
        noise_options,
        state_trajectories,
        train_estimated_state_policy,
    )

    if args.evaluate:
        evaluate_saved(args, env_id, pixels, name)
        return
    size = "" if pixels.get("image_size", [48, 64]) == [48, 64] else "%dx%d" % tuple(pixels["image_size"])
    dataset = f"bench/{args.env}-pixels{size}-expert-{args.demos}-v1"  # v1: with the recorded states
    pixel_env, state_env = make_env(env_id, **pixels), make_env(env_id, obs_type="state")
    collected = collect_dataset(env_id, dataset, args.demos, env_kwargs=pixels, num_envs=2, if_missing=True)
    demos, states = load_demonstrations(dataset, pixel_env), load_states(dataset)

    horizon, n_action_steps = policy_settings["horizon"], policy_settings["n_action_steps"]
    noise = noise_options(pixel_env, args.noisy_copies, args.state_noise, seed=args.seed)
    if args.state_policy:  # an earlier run's: only the estimator is trained
        from il_toolkit.policies import load

        state_policy, policy_wall, policy_cpu = load(args.state_policy), 0.0, 0.0
        state_policy = getattr(state_policy, "state_policy", state_policy)
    else:
        state_policy, policy_wall, policy_cpu = timed(
            train_flow_policy, TRAINER, state_trajectories(demos, states, **noise), state_env.observation_space,
            state_env.action_space, steps=args.policy_steps, batch_size=256, learning_rate=1e-3, seed=args.seed,
            spec_fields={"horizon": horizon, "n_obs_steps": 1, "velocity_net": "mlp"},
            features=default_state_features(state_env), policy_options={"n_action_steps": n_action_steps}, progress=True)
    print(f"state policy: {args.policy_steps} steps in {policy_cpu:.0f} CPU s", flush=True)
    n_fit = args.demos - max(1, args.demos // 10)  # the last 10% of the episodes measure the estimator's errors
    extra, extra_seconds = None, 0.0
    if args.extra_frames:
        extra, _, extra_seconds = timed(expert_frames, env_id, args.extra_frames, env_kwargs=pixels, steps=100, every=5)
        print(f"{len(extra[1])} extra labelled frames from {args.extra_frames} expert starts in {extra_seconds:.0f} CPU s",
              flush=True)
    locating, _, recombined_seconds = timed(locating_options, pixel_env, states[:n_fit], args.recombined_frames,
                                            seed=args.seed)
    if locating:
        print(f"{args.recombined_frames} recombined frames in {recombined_seconds:.0f} CPU s", flush=True)
    (policy, report), estimator_wall, estimator_cpu = timed(
        train_estimated_state_policy, demos[:n_fit], states[:n_fit], state_policy, pixel_env.observation_space,
        pixel_env.action_space, validation=(demos[n_fit:], states[n_fit:]), steps=args.estimator_steps, batch_size=64,
        seed=args.seed, stride=args.estimator_stride, extra_frames=extra, locate_steps=args.locate_steps,
        **locating)
    val = report["validation"]
    estimated = sorted(int(k.split("/")[1]) for k in val if k.startswith("mae/"))
    print(f"state estimator: {args.estimator_steps} steps in {estimator_cpu:.0f} CPU s; held-out mean error per "
          f"estimated entry: {', '.join('%d: %.3g' % (i, val['mae/%d' % i]) for i in estimated)}", flush=True)

    path = policy.save(Path(args.output_dir) / name / "pixels_policy")
    result = evaluate_checkpoint(path, env_id, args.eval_episodes, num_envs=2, env_kwargs=pixels)
    a = result.aggregates
    observation, _ = pixel_env.reset(seed=0)
    figures = {
        "setup": {"env": env_id, "env_kwargs": pixels, "dataset": dataset, "demos": args.demos,
                  "state_policy": {"reused": args.state_policy, "trainer": TRAINER, "steps": args.policy_steps, "batch_size": 256, "horizon": horizon,
                                   "n_action_steps": n_action_steps, "velocity_net": "mlp",
                                   "features": "the state env's feature pipeline", "trained_on": "recorded states",
                                   "noisy_copies": ({"copies": noise["noise"].copies, "entries": noise["noise"].entries,
                                                     "offset_std": noise["noise"].offset,
                                                     "jitter_std": noise["noise"].jitter}
                                                    if noise and not args.state_policy else None)},
                  "estimator": {"steps": args.estimator_steps, "batch_size": 64, "config": policy.estimator.config.to_json(),
                                "parameters": sum(p.numel() for p in policy.estimator.parameters()),
                                "trained_on_episodes": n_fit,
                                "extra_frames": {"expert_starts": args.extra_frames, "steps": 100, "every": 5,
                                                 "frames": 0 if extra is None else len(extra[1]),
                                                 "reset_seeds_from": 2_000_000, "cpu_seconds": round(extra_seconds, 1)},
                                "recombined_frames": {"frames": args.recombined_frames, "fresh_share": 0.5,
                                                      "cpu_seconds": round(recombined_seconds, 1),
                                                      "locate_steps": report["locate_steps"]}},
                  "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000, "torch_threads": 1,
                  "privileged_state": "training only: estimator targets and state-policy inputs; acting reads the "
                                      "observation (cameras + agent_pos) alone",
                  "quick": args.quick},
        "collection": {"seconds": round(collected.seconds, 1), "reused": collected.reused},
        "training": {
            "state_policy_cpu_seconds": round(policy_cpu, 1), "state_policy_wall_seconds": round(policy_wall, 1),
            "estimator_cpu_seconds": round(estimator_cpu, 1), "estimator_wall_seconds": round(estimator_wall, 1),
            "total_cpu_minutes": round((policy_cpu + estimator_cpu) / 60, 2),
            "rendered_frames_cpu_seconds": round(extra_seconds + recombined_seconds, 1),
            "estimator_images_per_second": round((report["steps"] + report["locate_steps"]) * 64 / report["seconds"], 1),
            "estimator_final_loss": report["final_loss"],
        },
        "estimator_validation": {"episodes": val["episodes"], "frames": val["frames"],
                                 "mean_abs_error": {str(i): round(val[f"mae/{i}"], 4) for i in estimated},
                                 "p90_abs_error": {str(i): round(val[f"p90/{i}"], 4) for i in estimated}},
        "evaluation": {"pc_success": a["pc_success"], "avg_max_reward": round(a["avg_max_reward"], 4),
                       "episodes": args.eval_episodes, "seconds": round(result.seconds, 1)},
        "ms_per_action": round(action_latency_ms(policy, observation), 2),
    }
    if args.diagnose:
        figures["diagnosis"] = {"episodes": args.diagnose_episodes,
                                **diagnose(policy, env_id, pixels, state_env, args.diagnose_episodes)}
    if args.env == "pusht":
        figures["estimator_validation"]["units"] = ("state entries 2, 3: block x, y in board units (512 per side, "
                                                     "5.3 per image pixel); 4: block angle in radians")
    print(f"{env_id} from pixels: {a['pc_success']:.0f}% success, avg max reward {a['avg_max_reward']:.3f}, "
          f"{figures['training']['total_cpu_minutes']:.1f} CPU minutes of training, "
          f"{figures['ms_per_action']:.1f} ms per action", flush=True)
    write_results(name, figures)


if __name__ == "__main__":
    main()
