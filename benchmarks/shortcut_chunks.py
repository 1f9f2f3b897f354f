"""What a shortcut model's step-size conditioning adds: its chunks after a few ODE steps against its chunks after
many, told the step it takes (the shortcut model, Frans et al. 2024) and told the smallest step (plain Euler on
the same net), from the same noise on the same demonstration windows.

A shortcut model is trained to land, in one step of size ``d``, where two of ``d / 2`` land, so that a few large
steps give the chunk that many small ones give. If its few-step chunks are no closer to its many-step chunks than
plain Euler's on the same net, the conditioning learned nothing (per action dimension too). Chunk distances do not
settle success, so ``--rollout-steps N`` also rolls the policy out at N steps told each way. Needs a checkpoint
(``il-toolkit train flow --shortcut_steps M`` or ``flow_state.py --shortcut-steps M --keep-checkpoints DIR``) and
the env's expert demonstrations (the dataset ``flow_state.py`` trains on, collected if missing); one CPU thread;
the public API (``load``, ``WindowDataset``, ``predict_chunk``, the ``shortcut_step_size`` inference option).

    .venv/bin/python benchmarks/shortcut_chunks.py --env aloha_insertion \\
        --policy DIR/naive_flow_matching_policy_trainer-s0 [--rollout-steps 2 --episodes 200]

Writes ``benchmarks/results/shortcut_chunks_<env>.json`` (``--name``): per step count, the root-mean-square
difference from the reference chunks over states, chunk positions and action dimensions (in the policy's action
units, relative to the state where the env's features make them so), overall and per dimension, each also as
a share of that dimension's spread (standard deviation of the reference chunks' values over states and chunk
positions), and for scale the difference between two reference chunks from different noise (the policy's own
randomness).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
from flow_state import ENVS, expert_demonstrations, save_variant  # noqa: E402

TOLD = {"shortcut": None, "plain_euler": 0.0}  # the step size the model is told: the solver's, or the smallest


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--policy", type=Path, required=True, help="a flow checkpoint trained with shortcut steps")
    parser.add_argument("--env", default="aloha_insertion", choices=sorted(ENVS))
    parser.add_argument("--demos", type=int, default=None, help="the dataset's episodes (default: flow_state.py's)")
    parser.add_argument("--states", type=int, default=512, help="demonstration states drawn (seed 0)")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 4, 8, 16], help="Euler step counts compared")
    parser.add_argument("--reference-steps", type=int, default=128, help="Euler steps of the reference chunks")
    parser.add_argument("--rollout-steps", nargs="*", type=int, default=[], metavar="N",
                        help="also roll the policy out at these step counts (of --steps), told each way")
    parser.add_argument("--episodes", type=int, default=50, help="rollouts per setting, seeds from 1,000,000")
    parser.add_argument("--name", default=None, help="results file name (default shortcut_chunks_<env>)")
    args = parser.parse_args()
    if args.states < 2 or args.reference_steps < 1 or min(args.steps) < 1 or args.episodes < 1:
        parser.error("--states must be >= 2, step counts and --episodes >= 1")
    if not set(args.rollout_steps) <= set(args.steps):
        parser.error("--rollout-steps must be among --steps")
    return args


def demonstration_windows(policy, demos, n_states: int) -> dict[str, torch.Tensor]:
    """``n_states`` observation windows ``(n_states, To, ...)`` drawn with seed 0 from those the policy trains on
    (``WindowDataset.from_trajectories``)."""
    from il_toolkit.train.imitation_learning.windows import WindowDataset

    windows = WindowDataset.from_trajectories(demos, policy)
    if n_states > len(windows):
        raise SystemExit(f"--states {n_states} is more than the demonstrations' {len(windows)} windows")
    drawn = torch.as_tensor(np.random.default_rng(0).choice(len(windows), n_states, replace=False))
    return windows.observation_batch(drawn)


def told_options(saved: dict, told: float | None) -> dict:
    """The checkpoint's own inference options with the step size the model is told (None: the solver's)."""
    options = {key: value for key, value in saved.items() if key != "shortcut_step_size"}
    return options if told is None else {**options, "shortcut_step_size": told}


def chunks(policy, window: dict[str, torch.Tensor], n_steps: int, told: float | None, saved: dict,
           noise_seed: int = 0) -> np.ndarray:
    """Chunks ``(B, H, Da)`` from the noise of ``noise_seed``, the model told ``told`` as its step size (None: the
    solver's)."""
    policy.generator = torch.Generator().manual_seed(noise_seed)
    policy.inference_options = told_options(saved, told)
    return policy.predict_chunk(window, n_steps=n_steps, solver="euler")


def rollouts(path: Path, env_id: str, n_steps: int, told: float | None, saved: dict, episodes: int) -> float:
    """Success (%) over ``episodes`` unseen seeds (from 1,000,000) with ``n_steps`` Euler steps, told ``told``."""
    import tempfile

    from il_toolkit.evaluation import evaluate_checkpoint

    variant = {"n_steps": n_steps, "solver": "euler", "inference_options": told_options(saved, told)}
    with tempfile.TemporaryDirectory() as tmp:
        return float(evaluate_checkpoint(save_variant(path, variant, Path(tmp) / "variant"), env_id, episodes,
                                         num_envs=2).aggregates["pc_success"])


def difference(chunk: np.ndarray, reference: np.ndarray, spread: np.ndarray) -> dict:
    """Root-mean-square difference, overall and per action dimension, raw and as a share of each dimension's spread."""
    per_dimension = np.sqrt(((chunk - reference) ** 2).mean(axis=(0, 1)))
    return {"rms": round(float(np.sqrt(((chunk - reference) ** 2).mean())), 5),
            "rms_share_of_spread": round(float(np.sqrt((((chunk - reference) / spread) ** 2).mean())), 5),
            "per_dimension_rms": np.round(per_dimension, 5).tolist(),
            "per_dimension_share_of_spread": np.round(per_dimension / spread, 4).tolist()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    from il_toolkit.policies import load

    env_id = ENVS[args.env][0]
    dataset, demos = expert_demonstrations(args.env, args.demos)
    policy = load(args.policy)
    if not getattr(policy, "spec", None) or not policy.spec.shortcut_steps:
        raise SystemExit(f"{args.policy} is not a shortcut model (train it with --shortcut_steps M)")
    window = demonstration_windows(policy, demos, args.states)
    saved = dict(policy.inference_options)
    reference = chunks(policy, window, args.reference_steps, None, saved)
    spread = np.maximum(reference.reshape(-1, reference.shape[-1]).std(axis=0), 1e-8)
    other_noise = difference(chunks(policy, window, args.reference_steps, None, saved, noise_seed=1), reference, spread)
    rows = []
    print(f"{args.policy} on {args.states} states of {dataset}: rms difference from {args.reference_steps} Euler steps "
          "(share of the spread), told the solver's step / told the smallest")
    for n_steps in sorted(args.steps):
        if n_steps >= policy.spec.shortcut_steps:  # a step of 1 / M or less is the smallest the model knows
            print(f"  {n_steps:3d} steps: skipped, the model's smallest step is 1/{policy.spec.shortcut_steps}")
            continue
        row = {"n_steps": n_steps, **{name: difference(chunks(policy, window, n_steps, told, saved), reference, spread)
                                      for name, told in TOLD.items()}}
        if n_steps in args.rollout_steps:
            row["pc_success"] = {name: rollouts(args.policy, env_id, n_steps, told, saved, args.episodes)
                                 for name, told in TOLD.items()}
        rows.append(row)
        worst = int(np.argmax(row["shortcut"]["per_dimension_share_of_spread"]))
        print(f"  {n_steps:3d} steps: shortcut {row['shortcut']['rms']:.4f} ({row['shortcut']['rms_share_of_spread']:.3f})"
              f"  plain Euler {row['plain_euler']['rms']:.4f} ({row['plain_euler']['rms_share_of_spread']:.3f})"
              f"  largest: dimension {worst} ({row['shortcut']['per_dimension_share_of_spread'][worst]:.3f} of its spread)")
        if "pc_success" in row:
            print(f"       success over {args.episodes} episodes: shortcut {row['pc_success']['shortcut']:.1f}%  "
                  f"plain Euler {row['pc_success']['plain_euler']:.1f}%", flush=True)
    print(f"  for scale, {args.reference_steps} steps from other noise: {other_noise['rms']:.4f} "
          f"({other_noise['rms_share_of_spread']:.3f})")
    write_results(args.name or f"shortcut_chunks_{args.env}", {
        "settings": {"policy": str(args.policy), "env_id": env_id, "dataset": dataset, "states": args.states,
                     "reference_steps": args.reference_steps, "shortcut_steps": policy.spec.shortcut_steps,
                     "shortcut_fraction": policy.spec.shortcut_fraction, "horizon": policy.spec.horizon,
                     "spread_per_dimension": np.round(spread, 5).tolist(), "inference_options": saved,
                     "rollout_episodes": args.episodes if args.rollout_steps else None, "eval_seed": 1_000_000},
        "rows": rows,
        "reference_from_other_noise": other_noise,
    })


if __name__ == "__main__":
    main()
