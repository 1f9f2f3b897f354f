"""DAgger on CartPole-v1 with the budget of 10 expert episodes (5 rounds x 2 episodes,
every visited state labelled by the LQR expert), 3 training seeds; mean return over 50
evaluation episodes, and wall-clock until the per-round evaluation (10 episodes) first
reaches 475.

Target: mean return >= 475 over 50 evaluation episodes for every seed.

    .venv/bin/python benchmarks/cartpole_dagger.py [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from _results import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes-per-round", type=int, default=2)
    parser.add_argument("--bc-epochs", type=int, default=20)
    args = parser.parse_args()

    from il_toolkit import DAgger, ILConfig

    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            config = ILConfig.dagger(seed=seed, dagger_iterations=args.rounds, dagger_episodes_per_iter=args.episodes_per_round,
                                     bc_epochs=args.bc_epochs, learning_rate=1e-3, eval_episodes=50, output_dir=out,
                                     use_wandb=False)
            start = time.perf_counter()
            trainer = DAgger("CartPole-v1", None, config, progress=False)
            results = trainer.train()
            wall = time.perf_counter() - start
        reached = next((r for r in results["rounds"] if r["mean_reward"] >= 475), None)
        run = {
            "seed": seed,
            "mean_return": results["eval"]["mean_return"],
            "std_return": results["eval"]["std_return"],
            "expert_labels": results["expert_labels"],
            "train_seconds": results["train_seconds"],
            "wall_seconds": wall,
            "first_round_at_475": reached["round"] if reached else None,
            "per_round_mean_reward": [r["mean_reward"] for r in results["rounds"]],
            "betas": [r["beta"] for r in results["rounds"]],
        }
        runs.append(run)
        print(f"seed {seed}: mean return {run['mean_return']:.1f} ± {run['std_return']:.1f} (50 episodes), "
              f"{run['expert_labels']} expert labels, rounds' 10-episode returns {run['per_round_mean_reward']}, "
              f"train {run['train_seconds']:.1f} s")
    returns = [r["mean_return"] for r in runs]
    met = all(r >= 475 for r in returns)
    print(f"min over seeds {np.min(returns):.1f}; target >= 475 on every seed: {'met' if met else 'MISSED'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    write_results("cartpole_dagger", {
        "setting": {**vars(args), "expert": "cartpole_lqr", "expert_episodes": args.rounds * args.episodes_per_round,
                    "learning_rate": 1e-3, "beta_schedule": "linear from 1.0"},
        "runs": runs, "min_mean_return": float(np.min(returns)), "target_met": met,
        "load_average": os.getloadavg(),
    })


if __name__ == "__main__":
    main()
