"""BC on CartPole-v1 from 10 LQR episodes, ``ILConfig.behavioral_cloning()`` defaults, 3 training seeds.

Target: mean return >= 475 over 50 evaluation episodes for every seed.

    .venv/bin/python benchmarks/cartpole_bc.py [--seeds 0 1 2] [--episodes 10] [--eval-episodes 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from _results import write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=10, help="expert demonstration episodes")
    parser.add_argument("--eval-episodes", type=int, default=50)
    args = parser.parse_args()

    from il_toolkit import BehavioralCloning, ILConfig

    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            config = ILConfig.behavioral_cloning(
                seed=seed, num_expert_episodes=args.episodes, eval_episodes=args.eval_episodes,
                output_dir=out, use_wandb=False,
            )
            start = time.perf_counter()
            results = BehavioralCloning(env="CartPole-v1", config=config, progress=False).train()
            wall = time.perf_counter() - start
        run = {
            "seed": seed,
            "mean_return": results["eval"]["mean_return"],
            "std_return": results["eval"]["std_return"],
            "pc_success": results["eval"]["pc_success"],
            "train_seconds": results["train_seconds"],
            "wall_seconds": wall,
            "best_epoch": results["best_epoch"],
            "best_val_loss": results["best_val_loss"],
        }
        runs.append(run)
        print(f"seed {seed}: mean return {run['mean_return']:.1f} ± {run['std_return']:.1f} over "
              f"{args.eval_episodes} episodes, success {run['pc_success']:.0f}%, train {run['train_seconds']:.1f} s")
    returns = [r["mean_return"] for r in runs]
    target_met = all(r >= 475 for r in returns)
    print(f"mean over seeds {np.mean(returns):.1f}; min {np.min(returns):.1f}; target >= 475 on every seed: "
          f"{'met' if target_met else 'MISSED'}")
    write_results("cartpole_bc", {
        "setting": {"env": "CartPole-v1", "expert": "cartpole_lqr", "demo_episodes": args.episodes,
                    "eval_episodes": args.eval_episodes, "config": "ILConfig.behavioral_cloning() defaults"},
        "runs": runs,
        "min_mean_return": float(np.min(returns)),
        "target": "mean return >= 475 for every seed",
        "target_met": target_met,
    })


if __name__ == "__main__":
    main()
