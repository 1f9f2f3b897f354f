"""Instructions that decide what is right: PushT with two targets, the one to reach named in words.

Everything goes through the public API, as a user's script would:

1. ``collect_dataset`` records scripted-expert demonstrations on ``il_toolkit/PushTTwoTarget-v0``
   (200 episodes; each draws the left or the right target and one of six phrasings naming it; the
   target pose is recorded beside each observation as training-only supervision).
2. ``instructed_demonstrations`` moves each episode into its target's frame; a flow-matching
   policy (``naive_flow_matching_policy_trainer``, MLP velocity net, PushT's state feature pipeline
   and ``il-toolkit train flow``'s PushT defaults) trains on the moved episodes.
3. ``train_instructed_policy`` fits the instruction grounder (the built-in byte-level language
   model, from scratch) and puts the two together: one checkpoint.
4. The saved policy is loaded and run with ``rollout_episode`` on unseen reset seeds from
   1,000,000 (100 by default) under three instruction sets: the training phrasings, held-out
   paraphrases (wordings never seen in training) and the instruction withheld (an empty string;
   the observation does not say which target is meant, so chance is the best any policy can do).

With ``--vla-steps N`` (N > 0) the toolkit's ``VLAModel`` is trained end to end on the same
demonstrations as they were recorded (the state through the env's feature pipeline as its one
observation token, the instruction through its built-in language model, chunks of 1) and
evaluated the same way: whether a single network learns to follow the instruction from
demonstrations alone, without the recorded goal. A second VLA is trained with goal grounding
(``VLAModel.for_dataset(..., goal_env=env)``): the recorded target supervises a grounder inside it
in training, and it reads the state and predicts actions in the grounded target's frame (PushT's
pipeline); acting, it reads the state and the instruction alone.

Figures per instruction set: success % (the instructed target covered > 95%), % reaching the
*other* target, mean max coverage of the instructed target, and how often the grounder chose the
instructed target; CPU seconds of each training phase (one thread); ms per action.

    .venv/bin/python benchmarks/instructed_pusht.py [--quick]

Writes ``benchmarks/results/instructed_pusht.json``.
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

ENV_ID = "il_toolkit/PushTTwoTarget-v0"
TRAINER = "naive_flow_matching_policy_trainer"
INSTRUCTION_SETS = ("train", "held_out", "withheld")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--demos", type=int, default=200)
    parser.add_argument("--policy-steps", type=int, default=6000, help="flow policy steps, batch 256")
    parser.add_argument("--grounder-steps", type=int, default=400, help="instruction grounder steps, batch 32")
    parser.add_argument("--eval-episodes", type=int, default=100, help="episodes per instruction set")
    parser.add_argument("--vla-steps", type=int, default=0, help="also train an end-to-end VLA for this many steps "
                        "(batch 256; 0: not)")
    parser.add_argument("--vla-eval-episodes", type=int, default=50, help="episodes per instruction set for the VLA")
    parser.add_argument("--vla-variants", nargs="+", choices=("end_to_end", "grounded"), default=["end_to_end", "grounded"],
                        help="which VLAs --vla-steps trains")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 demos, 300 + 100 steps, 4 episodes per set")
    parser.add_argument("--name", default=None, help="results file name (default: instructed_pusht)")
    parser.add_argument("--output-dir", default="output/bench", help="the trained policy goes to OUTPUT_DIR/NAME/")
    return parser.parse_args()


def timed(fn, *args, **kwargs):
    """``(result, CPU seconds of this process)``."""
    cpu = time.process_time()
    return fn(*args, **kwargs), time.process_time() - cpu


def grounded_goal(policy) -> np.ndarray | None:
    """The goal the policy grounded its current instruction to (None for a policy without grounding)."""
    if hasattr(policy, "goal_index"):
        return policy.goal
    goals = getattr(getattr(policy, "network", None), "goals", None)
    return None if goals is None else goals.ground([policy.instruction])[0]


def evaluate_instruction_set(policy, instructions: str, episodes: int) -> dict:
    """Run ``policy`` on ``episodes`` seeds of the env giving instructions from ``instructions``."""
    from il_toolkit.envs import make_env
    from il_toolkit.rollout import rollout_episode

    env = make_env(ENV_ID, instructions=instructions)
    success, other, coverage, grounded = [], [], [], []
    for seed in range(1_000_000, 1_000_000 + episodes):
        episode = rollout_episode(policy, env, seed, keep_observations=False)
        success.append(episode.success)
        other.append(bool(episode.final_info["reached_other"]))
        coverage.append(float(episode.final_info["max_coverage"]))
        goal = grounded_goal(policy)
        if goal is not None:
            grounded.append(bool(np.allclose(goal, env.unwrapped.goal_pose)))
    figures = {"pc_success": 100 * float(np.mean(success)), "pc_reached_other_target": 100 * float(np.mean(other)),
               "avg_max_coverage": round(float(np.mean(coverage)), 4), "episodes": episodes}
    if grounded:
        figures["pc_grounded_to_instructed_target"] = 100 * float(np.mean(grounded))
    return figures


def train_vla(dataset: str, env, args: argparse.Namespace, grounded: bool) -> tuple[object, float]:
    """The VLA on the recorded demonstrations, end to end or with goal grounding (in the frame of the
    target the instruction names, PushT's feature pipeline); ``(policy, CPU seconds)``."""
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.model.vla import VLAModel
    from il_toolkit.policies import load
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, create_lerobot_dataloader
    from il_toolkit.train.il.vla import VLABehavioralCloning

    torch.manual_seed(args.seed)
    data = ChunkedEpisodeDataset(dataset, "all", chunk_size=1, environment_state=grounded)
    if grounded:
        from il_toolkit.envs import make_env

        model = VLAModel.for_dataset(data, features=default_state_features(make_env("il_toolkit/PushT-v0")).to_json(),
                                     goal_env=env, seed=args.seed)
    else:
        model = VLAModel(observation_space=env.observation_space, action_space=env.action_space, cameras=(), state_dim=5,
                         chunk_size=1, features=default_state_features(env).to_json(), seed=args.seed)
    name = "instructed_pusht_grounded_vla" if grounded else "instructed_pusht_vla"
    config = ILConfig.behavioral_cloning(output_dir=str(Path(args.output_dir) / name),
                                         batch_size=256, learning_rate=1e-3, seed=args.seed, bc_epochs=10_000)
    cpu = time.process_time()
    result = VLABehavioralCloning(model, config, use_wandb=False, dataset_name=dataset, progress=True).train(
        create_lerobot_dataloader(data, batch_size=256, seed=args.seed), max_steps=args.vla_steps)
    return load(result["policy_path"]), time.process_time() - cpu


def main() -> None:
    args = parse_args()
    if args.quick:
        args.demos, args.policy_steps, args.grounder_steps, args.eval_episodes = 10, 300, 100, 4
    name = args.name or "instructed_pusht" + ("_quick" if args.quick else "")
    torch.set_num_threads(1)
    from il_toolkit.envs import make_env
    from il_toolkit.envs.pusht_two_target import TARGETS
    from il_toolkit.policies import load
    from il_toolkit.train.datasets.collect import collect_dataset
    from il_toolkit.train.instructed import instructed_demonstrations, train_flow_instructed_policy

    dataset = f"bench/pusht-two-target-expert-{args.demos}-v0"
    env = make_env(ENV_ID)
    collected = collect_dataset(ENV_ID, dataset, args.demos, num_envs=2, if_missing=True)
    demos = instructed_demonstrations(dataset, env)
    (policy, report), cpu = timed(train_flow_instructed_policy, demos, env.observation_space, env.action_space,
                                  steps=args.policy_steps, grounder_steps=args.grounder_steps, batch_size=256,
                                  learning_rate=1e-3, seed=args.seed)
    grounder_cpu = report["seconds"]  # one thread: the grounder's wall-clock is its CPU time
    policy_cpu = cpu - grounder_cpu
    print(f"state policy: {args.policy_steps} steps in {policy_cpu:.0f} CPU s; grounder: {args.grounder_steps} steps "
          f"in {grounder_cpu:.0f} s, accuracy on the training instructions {100 * report['train_accuracy']:.0f}%",
          flush=True)
    path = policy.save(Path(args.output_dir) / name / "policy")
    policy = load(path)

    results = {}
    for instructions in INSTRUCTION_SETS:
        results[instructions] = evaluate_instruction_set(policy, instructions, args.eval_episodes)
        r = results[instructions]
        print(f"instructions {instructions}: {r['pc_success']:.0f}% success, {r['pc_reached_other_target']:.0f}% reached "
              f"the other target, grounded to the instructed target {r['pc_grounded_to_instructed_target']:.0f}%",
              flush=True)
    vlas = {}
    for label, grounded in (("end_to_end_vla", False), ("grounded_vla", True)):
        if args.vla_steps <= 0 or label.removesuffix("_vla") not in args.vla_variants:
            continue
        vla_policy, vla_cpu = train_vla(dataset, env, args, grounded)
        vla = vlas[label] = {"steps": args.vla_steps, "batch_size": 256, "cpu_seconds": round(vla_cpu, 1),
                             "parameters": vla_policy.num_parameters(), "evaluation": {}}
        for instructions in INSTRUCTION_SETS:
            vla["evaluation"][instructions] = r = evaluate_instruction_set(vla_policy, instructions,
                                                                          args.vla_eval_episodes)
            print(f"{label.replace('_', ' ')}, instructions {instructions}: {r['pc_success']:.0f}% success, "
                  f"{r['pc_reached_other_target']:.0f}% reached the other target", flush=True)
    observation, _ = env.reset(seed=0)
    for _ in range(3):
        policy.predict(observation)
    start = time.perf_counter()
    for _ in range(50):
        policy.predict(observation)
    figures = {
        "setup": {"env": ENV_ID, "dataset": dataset, "demos": args.demos, "targets": {k: v.tolist() for k, v in TARGETS.items()},
                  "state_policy": {"trainer": TRAINER, "steps": args.policy_steps, "batch_size": 256, "horizon": 1,
                                   "velocity_net": "mlp", "features": "PushT's state feature pipeline",
                                   "trained_on": "demonstrations moved into their target's frame"},
                  "grounder": {"steps": args.grounder_steps, "batch_size": 32, "config": {
                      k: v for k, v in policy.grounder.config.to_json().items() if k != "pretrained"},
                      "parameters": sum(p.numel() for p in policy.grounder.parameters())},
                  "eval_seed": 1_000_000, "torch_threads": 1, "quick": args.quick,
                  "privileged_state": "training only: the target pose recorded beside each observation names each "
                                      "episode's goal; acting reads the state observation and the instruction"},
        "collection": {"seconds": round(collected.seconds, 1), "reused": collected.reused},
        "training": {"state_policy_cpu_seconds": round(policy_cpu, 1), "grounder_cpu_seconds": round(grounder_cpu, 1),
                     "total_cpu_minutes": round((policy_cpu + grounder_cpu) / 60, 2),
                     "grounder_train_accuracy": report["train_accuracy"],
                     "distinct_training_instructions": report["distinct_instructions"]},
        "evaluation": results,
        "ms_per_action": round(1000 * (time.perf_counter() - start) / 50, 2),
    }
    figures.update(vlas)
    write_results(name, figures)


if __name__ == "__main__":
    main()
