"""GAIL on PushT (state) from the scripted expert: what it reaches (a report,
not a target).

Setting: ``ILConfig.gail`` (discriminator 256 hidden, 5 updates, lr 3e-4)
with a BC warm start of the PPO policy (``--warm-start-epochs``, 200 here; the preset gives 20) on
``--demos`` expert episodes and ``--timesteps`` generator steps; the generator and the
discriminator work in PushT's task frame (``ILConfig.task_frame``; ``--no-task-frame``: board
coordinates, where the warm start and GAIL both stayed at 0%, ``results/pusht_gail_board_coords.json``).
PushT's variable horizon is handled by GAIL's absorbing-state wrapper (300 steps). Each run's policy is evaluated right
after the BC warm start (round 0) and after the last round, on the same seeds, so the figure
shows what the adversarial phase adds. Evaluation: 100 reset seeds from 2,000,000 (GAIL's
in-training evaluation seeds; demonstrations use 0, 1, ...), success = coverage > 0.95,
avg max reward = mean over episodes of the best coverage / 0.95 (clipped to 1).

    .venv/bin/python benchmarks/pusht_gail.py [--seeds 0 1 2] [--timesteps N] [--quick]
        [--select-every N] [--set FIELD=VALUE ...] [--tag NAME]

Measured (3 seeds, 50 demos, 200k steps, task frame): 8.3% success after the warm start, 0% after
GAIL (``pusht_gail.json``); keeping the best in-training round (``--select-every 5``) kept the
warm start in every seed, 11% on other seeds (``pusht_gail_select.json``).

Writes ``benchmarks/results/pusht_gail.json``. The CPU has 2 cores shared with other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

from _results import RESULTS_DIR, write_results

ENV_ID = "il_toolkit/PushT-v0"
KEYS = ("pc_success", "avg_max_reward", "mean_return")


def run_one(seed: int, demos: int, timesteps: int, eval_episodes: int, warm_start_epochs: int,
            task_frame: bool, select_every: int = 0, select_episodes: int = 20,
            overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One GAIL run; the policy is evaluated after the BC warm start (round 0) and after the
    last round, on the same ``eval_episodes`` seeds (from 2,000,000). With ``select_every`` > 0
    the in-training evaluations run every so many rounds on ``select_episodes`` of those seeds
    instead (rows ``bc_warm_start_only`` and ``gail`` then use them), GAIL keeps the round with
    the best return, and row ``gail_best_kept`` is that policy on ``eval_episodes`` other seeds
    (the final evaluation's, from 1,000,000)."""
    from il_toolkit.config.training_config import ILConfig
    from il_toolkit.train.il.gail import GAIL

    with tempfile.TemporaryDirectory() as out:
        config = ILConfig.gail(seed=seed, num_expert_episodes=demos, total_timesteps=timesteps, use_wandb=False,
                               eval_episodes=eval_episodes, output_dir=out, gail_bc_warm_start_epochs=warm_start_epochs,
                               task_frame=task_frame, **(overrides or {}))
        start = time.perf_counter()
        results = GAIL(ENV_ID, config, progress=False).train(
            eval_every_rounds=select_every or 10**9, eval_episodes_during_training=select_episodes if select_every
            else eval_episodes, evaluate_policy=bool(select_every))
        wall = time.perf_counter() - start
    first, last = results["eval_history"][0], results["eval_history"][-1]
    common = {"seed": seed, "wall_seconds": round(wall, 1), "last_disc_acc": results.get("last_disc_acc"),
              "disc_collapse_rounds": results.get("disc_collapse_rounds")}
    seen = {"eval_episodes": select_episodes if select_every else eval_episodes, "eval_seeds_from": 2_000_000}
    rows = [{"method": "bc_warm_start_only", **common, **seen, **{k: first[k] for k in ("timesteps", *KEYS)}},
            {"method": "gail", **common, **seen, **{k: last[k] for k in ("timesteps", *KEYS)}}]
    if select_every:
        best = next(h for h in results["eval_history"] if h["round"] == results["best_round"])
        rows.append({"method": "gail_best_kept", **common, "eval_episodes": eval_episodes, "eval_seeds_from": 1_000_000,
                     "best_round": results["best_round"], "timesteps": best["timesteps"],
                     **{k: results["eval"][k] for k in KEYS}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--timesteps", type=int, default=200_000)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--warm-start-epochs", type=int, default=200,
                        help="BC epochs on the demonstrations before GAIL (ILConfig.gail_bc_warm_start_epochs)")
    parser.add_argument("--task-frame", action=argparse.BooleanOptionalAction, default=True,
                        help="the generator and the discriminator work in PushT's task frame (ILConfig.task_frame)")
    parser.add_argument("--tag", default="", help="suffix of the results file name (pusht_gail_<tag>.json)")
    parser.add_argument("--select-every", type=int, default=0,
                        help="> 0: evaluate every N rounds on --select-episodes seeds, keep the best round and "
                             "evaluate it on --eval-episodes other seeds (row gail_best_kept)")
    parser.add_argument("--select-episodes", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="ILConfig overrides, e.g. gail_disc_noise=0.1 learning_rate=1e-4 (values parsed as JSON)")
    parser.add_argument("--quick", action="store_true", help="one seed, 4096 steps, 10 evaluation episodes")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.timesteps, args.eval_episodes, args.demos = args.seeds[:1], 4096, 10, 10
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))

    overrides = {field: json.loads(value) for field, value in (item.split("=", 1) for item in args.set)}
    rows = []
    for seed in args.seeds:
        for row in run_one(seed, args.demos, args.timesteps, args.eval_episodes, args.warm_start_epochs, args.task_frame,
                           args.select_every, args.select_episodes, overrides):
            rows.append(row)
            print(f"[{row['method']}] seed {seed}: success {row['pc_success']:.1f}%, avg max reward "
                  f"{row['avg_max_reward']:.3f}, return {row['mean_return']:.1f} after {row['timesteps']} GAIL steps "
                  f"(run: {row['wall_seconds']:.0f} s)", flush=True)
    figures = {"settings": {"env": ENV_ID, "demos": args.demos, "timesteps": args.timesteps,
                            "eval_episodes": args.eval_episodes, "seeds": args.seeds, "preset": "ILConfig.gail()",
                            "warm_start_epochs": args.warm_start_epochs, "task_frame": args.task_frame,
                            "select_every": args.select_every, "select_episodes": args.select_episodes,
                            "overrides": overrides,
                            "quick": args.quick},
               "rows": rows}
    write_results("pusht_gail" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else ""), figures)


if __name__ == "__main__":
    main()
