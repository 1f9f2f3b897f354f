"""PushT (state) from the scripted expert: BC with 50 and 200 demonstrations, and DAgger
with about the same budget of expert labels as BC-200; success over 100 evaluation seeds,
for each training seed.

Target (issue 4): DAgger >= 80% success and ahead of BC at equal labels.

    .venv/bin/python benchmarks/pusht_bc_dagger.py [--seeds 0 1 2] [--eval-episodes 100] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import RESULTS_DIR, write_results

DATASET = "bench/pusht-expert-200-v0"
COMMON = dict(batch_size=256, learning_rate=1e-3, weight_decay=1e-4, policy_type="mlp", use_wandb=False)


def run_bc(demos, n_demos: int, seed: int, epochs: int, eval_episodes: int, out: Path) -> dict:
    from il_toolkit import BehavioralCloning, ILConfig

    config = ILConfig.behavioral_cloning(seed=seed, bc_epochs=epochs, eval_episodes=eval_episodes,
                                         output_dir=str(out / f"bc{n_demos}-s{seed}"), **COMMON)
    results = BehavioralCloning("PushT-v0", config, progress=False).train(trajectories=demos[:n_demos])
    labels = int(sum(len(t.acts) for t in demos[:n_demos]))
    return {"method": f"bc-{n_demos}", "seed": seed, "expert_labels": labels, "train_seconds": results["train_seconds"],
            **{k: results["eval"][k] for k in ("pc_success", "avg_max_reward", "mean_return")}}


def run_dagger(seed: int, rounds: int, episodes: int, epochs: int, eval_episodes: int, out: Path) -> dict:
    from il_toolkit import ILConfig
    from il_toolkit.train.il.dagger import DAgger

    config = ILConfig.dagger(seed=seed, dagger_iterations=rounds, dagger_episodes_per_iter=episodes, bc_epochs=epochs,
                             eval_episodes=eval_episodes, output_dir=str(out / f"dagger-s{seed}"), **COMMON)
    results = DAgger("PushT-v0", None, config, progress=False).train()
    return {"method": "dagger", "seed": seed, "expert_labels": results["expert_labels"],
            "train_seconds": results["train_seconds"], "rounds": results["rounds"],
            **{k: results["eval"][k] for k in ("pc_success", "avg_max_reward", "mean_return")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--bc-epochs", type=int, default=100)
    parser.add_argument("--dagger-rounds", type=int, default=8)
    parser.add_argument("--dagger-episodes", type=int, default=8)
    parser.add_argument("--dagger-epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 eval episodes, short training")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.eval_episodes, args.bc_epochs, args.dagger_rounds, args.dagger_epochs = [0], 20, 20, 3, 10

    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit.train.datasets.minari_io import collect_dataset, dataset_exists, load_demonstrations

    if not dataset_exists(DATASET):
        collect_dataset("PushT-v0", DATASET, 200, seed=0, progress=True)
    demos = load_demonstrations(DATASET)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for seed in args.seeds:
            for n_demos in (50, 200):
                start = time.perf_counter()
                rows.append(run_bc(demos, n_demos, seed, args.bc_epochs, args.eval_episodes, out))
                print(f"seed {seed} bc-{n_demos}: success {rows[-1]['pc_success']:.0f}%, avg max coverage reward "
                      f"{rows[-1]['avg_max_reward']:.3f}, {rows[-1]['expert_labels']} labels, {time.perf_counter() - start:.0f} s")
            start = time.perf_counter()
            rows.append(run_dagger(seed, args.dagger_rounds, args.dagger_episodes, args.dagger_epochs, args.eval_episodes, out))
            print(f"seed {seed} dagger: success {rows[-1]['pc_success']:.0f}%, avg max reward {rows[-1]['avg_max_reward']:.3f}, "
                  f"{rows[-1]['expert_labels']} labels, {time.perf_counter() - start:.0f} s")
    summary = {}
    for method in ("bc-50", "bc-200", "dagger"):
        chosen = [r for r in rows if r["method"] == method]
        summary[method] = {"mean_pc_success": float(np.mean([r["pc_success"] for r in chosen])),
                           "mean_avg_max_reward": float(np.mean([r["avg_max_reward"] for r in chosen])),
                           "mean_expert_labels": float(np.mean([r["expert_labels"] for r in chosen]))}
        print(f"{method}: success {summary[method]['mean_pc_success']:.1f}% (mean over seeds), "
              f"avg max reward {summary[method]['mean_avg_max_reward']:.3f}, labels {summary[method]['mean_expert_labels']:.0f}")
    met = summary["dagger"]["mean_pc_success"] >= 80 and summary["dagger"]["mean_pc_success"] > summary["bc-200"]["mean_pc_success"]
    print(f"target DAgger >= 80% and ahead of BC-200: {'met' if met else 'MISSED'}")
    write_results("pusht_bc_dagger" + ("_quick" if args.quick else ""), {
        "settings": {**vars(args), **COMMON, "policy": "MLPPolicy 256x256"}, "rows": rows, "summary": summary,
        "target": "DAgger >= 80% success and ahead of BC at equal labels", "target_met": met,
    })


if __name__ == "__main__":
    main()
