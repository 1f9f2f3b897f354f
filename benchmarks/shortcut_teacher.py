"""How steady a shortcut model's training is with each teacher: the loss of its flow-matching rows and of its
self-consistency rows, window by window, with the live velocity net as the teacher (decay 0) and with moving
averages of it (``FlowModelSpec.shortcut_ema_decay``).

A shortcut model (Frans et al. 2024) learns large ODE steps from targets it makes itself, two half steps
of a teacher. With the live net as teacher on ALOHA transfer (chunks of 16 x 14, ``shortcut_steps=8``,
``shortcut_fraction=0.75``) the loss flared up in bursts, and a 40,000-step policy so trained failed every
episode; this benchmark shows the bursts and whether an average removes them. Training only (no rollouts):
the naive trainer through the public API (``collect_dataset``, ``load_demonstrations``,
``fit_flow_policy`` with its per-step ``log``), at ``train flow``'s settings for the env, on a
``--steps`` cosine schedule, one CPU thread.

    .venv/bin/python benchmarks/shortcut_teacher.py [--env aloha_transfer] [--steps 3000] [--decays 0 0.99]

Writes ``benchmarks/results/shortcut_teacher_<env>.json``: per decay, every ``--window`` steps the mean
and the largest loss of each kind of row, and the training seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402
from flow_state import DATASET, ENVS  # noqa: E402

LOSSES = ("flow_matching_loss", "self_consistency_loss")
TRAINER = "naive_flow_matching_policy_trainer"
BATCH = 256


def windows(values: dict[str, list[float]], window: int) -> list[dict]:
    """Mean and largest of each loss over consecutive ``window``-step windows."""
    rows = []
    for start in range(0, len(values[LOSSES[0]]), window):
        row: dict = {"steps": start + min(window, len(values[LOSSES[0]]) - start)}
        for name in LOSSES:
            part = values[name][start:start + window]
            row[name] = {"mean": float(np.mean(part)), "max": float(np.max(part))}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="aloha_transfer", choices=sorted(ENVS), help="the env's expert demonstrations")
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps (the cosine schedule's length)")
    parser.add_argument("--window", type=int, default=250, help="steps per reported window")
    parser.add_argument("--decays", nargs="+", type=float, default=[0.0, 0.99],
                        help="teacher moving-average decays to compare (0: the live net)")
    parser.add_argument("--shortcut-steps", type=int, default=8, metavar="M",
                        help="smallest step 1/M, a power of two (train flow --shortcut_steps)")
    parser.add_argument("--shortcut-fraction", type=float, default=0.75,
                        help="share of every batch on self-consistency targets (train flow --shortcut_fraction)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="results file name (default: shortcut_teacher_<env>)")
    args = parser.parse_args()
    if args.steps < 1 or args.window < 1:
        parser.error("--steps and --window must be at least 1")
    from il_toolkit.model.spec import shortcut_settings_problem

    if args.shortcut_steps == 0:
        parser.error("--shortcut-steps must be a power of two such as 8: the benchmark compares shortcut teachers")
    problem = shortcut_settings_problem(args.shortcut_steps, args.shortcut_fraction)
    if problem:
        parser.error(f"--{problem.replace('_', '-')}")
    for decay in args.decays:
        problem = shortcut_settings_problem(args.shortcut_steps, args.shortcut_fraction, decay)
        if problem:
            parser.error(f"--decays: {problem}")
    torch.set_num_threads(1)
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit import collect_dataset, load_demonstrations
    from il_toolkit.envs import make_env
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning.cli import defaults_for
    from il_toolkit.train.imitation_learning.loop import fit_flow_policy

    env_id, demos_count, _ = ENVS[args.env]
    env = make_env(env_id)
    defaults = defaults_for(env)
    dataset = DATASET.format(env=args.env, n=demos_count)
    collect_dataset(env_id, dataset, demos_count, seed=0, num_envs=2, progress=False, if_missing=True)
    demos = load_demonstrations(dataset, env=env)
    runs = {}
    for decay in args.decays:
        values: dict[str, list[float]] = {name: [] for name in LOSSES}

        def log(metrics: dict[str, float], step: int) -> None:
            for name in LOSSES:
                values[name].append(metrics[name])

        start = time.perf_counter()
        fit_flow_policy(TRAINER, demos, env.observation_space, env.action_space,
                        steps=args.steps, batch_size=BATCH, learning_rate=defaults["learning_rate"], seed=args.seed,
                        features=default_state_features(env), log=log,
                        spec_fields={"horizon": defaults["horizon"], "n_obs_steps": defaults["n_obs_steps"],
                                     "shortcut_steps": args.shortcut_steps, "shortcut_fraction": args.shortcut_fraction,
                                     "shortcut_ema_decay": decay},
                        policy_options={"n_action_steps": defaults["n_action_steps"]})
        seconds = time.perf_counter() - start
        rows = windows(values, args.window)
        runs[str(decay)] = {"train_seconds": round(seconds, 1), "windows": rows,
                            "largest_flow_matching_loss": max(r["flow_matching_loss"]["max"] for r in rows)}
        print(f"teacher decay {decay}: {seconds:.0f} s")
        for r in rows:
            fm, sc = r["flow_matching_loss"], r["self_consistency_loss"]
            print(f"  steps {r['steps']:6d}  flow matching {fm['mean']:8.3g} (max {fm['max']:8.3g})  "
                  f"self-consistency {sc['mean']:8.3g} (max {sc['max']:8.3g})", flush=True)
    env.close()
    write_results(args.name or f"shortcut_teacher_{args.env}", {
        "env_id": env_id, "dataset": dataset, "trainer": TRAINER, "steps": args.steps, "window": args.window,
        "seed": args.seed, "shortcut_steps": args.shortcut_steps, "shortcut_fraction": args.shortcut_fraction,
        "horizon": defaults["horizon"], "n_obs_steps": defaults["n_obs_steps"],
        "n_action_steps": defaults["n_action_steps"], "learning_rate": defaults["learning_rate"], "batch_size": BATCH,
        "runs": runs})


if __name__ == "__main__":
    main()
