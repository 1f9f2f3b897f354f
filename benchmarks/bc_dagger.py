"""BC against DAgger from a scripted expert, state observations: BC with two demonstration
budgets, and DAgger from a learner first fitted on demonstrations D0 (``--dagger-d0``), success
over the evaluation seeds, for each training seed.

- PushT: DAgger starts from the first 100 demonstrations and runs rounds until it holds exactly
  the larger budget's labels (``--label-budget``), its rollouts ending once stuck; ``--methods
  dagger-small`` also runs it at the smaller budget's labels, from the first 25 demonstrations.
  Beta follows ``ILConfig.dagger``'s linear schedule from 1 (the expert acts in part of every round's steps).
  The learner works in the block frame with a mixture head (``--no-task-frame
  --mixture-components 1``: board coordinates and an MSE regressor); each round continues from
  the last round's weights.
- ALOHA: D0 = the larger set, plus its rounds' labels; beta 0 (the learner acts alone from round
  1); each round trains a fresh learner, which leaves out the arm joint velocities
  (``--no-drop-velocity-obs`` keeps them).

Each round keeps its last epoch; DAgger's final policy is its best round (``DAgger.best_round``).

Targets: PushT: DAgger >= 80% success and ahead of BC at equal labels (100 seeds);
ALOHA transfer cube: DAgger >= 80% (50 seeds).

    .venv/bin/python benchmarks/bc_dagger.py --env pusht   [--seeds 0 1 2] [--quick]
    .venv/bin/python benchmarks/bc_dagger.py --env aloha_transfer
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _results import RESULTS_DIR, write_results

COMMON = dict(policy_type="mlp", use_wandb=False)
SETTINGS = {
    # env id, demo budgets, eval episodes, DAgger rounds x episodes and epochs a round, DAgger's D0 and beta, target.
    # ALOHA: the learner is first fitted on D0, then acts alone (beta 0); with the linear schedule from 1, two
    # rounds of mostly-expert rollouts added little (seed 1: 25% and 25% vs 85% and 75% at beta 0).
    # PushT: the learner works in the block frame with a mixture head; BC gets 400 epochs (BC-200: 51% at 100
    # epochs, 68.7% at 400; 3 seeds, v0 expert). DAgger starts from a learner fitted on the first 100 demonstrations
    # (D0, their labels counted) and runs rounds of 8 episodes until it holds BC-200's labels (label_budget "bc":
    # ILConfig.dagger_label_budget; at most 12 rounds); each round continues from the last one's weights (seed 0, v0
    # expert, 4 rounds x 16 episodes: 45/60/75/75% a round warm, 55/50/25/50% fresh); a rollout stuck for 10 steps
    # (standing still or cycling) ends there. Beta follows ILConfig.dagger's linear schedule from 1: the expert's share of the
    # actions keeps the rollouts near its own states, and those labels are what PushT's learner gains from (3 seeds:
    # linear 86.3%, exponential from 1 78.3%, results/bc_dagger_pusht_beta_exp.json; linear from D0 = 150 demos in 6
    # rounds: 86.0%, results/bc_dagger_pusht_d0_150.json; a fresh 400-epoch fit on the linear runs' aggregates: 84.7%,
    # scratch). With beta 0 from round 1 (3 seeds, results/bc_dagger_pusht_beta0.json) DAgger scored 74.0%, and a
    # fresh 400-epoch fit on such an aggregate 73-74% against BC-200's 84% (seed 0): labels of the learner's own
    # states were worth less than demonstrations here. small_d0_demos: --methods dagger-small runs DAgger at BC-50's labels from 25 demonstrations.
    # Over label budgets (results/bc_dagger_pusht_budgets.json; --demos 100 400 --small-d0-demos 50 for the middle one),
    # DAgger vs BC: 47.2 vs 39.2% at 50 demos' labels, 73.0 vs 80.3% at 100's, 86.6 vs 89.0% at 200's; BC-400 93.7%.
    # More labels of any kind lift this learner; DAgger's are worth less than demonstrations' from 100 demos up.
    # Datasets: dataset_version names the expert revision that wrote them (PushT v1: the expert engaged within
    # +-15 px sideways of a contact, PushTControlParams.engage_lateral; v0 demos came from the +-3 px expert).
    "pusht": dict(env_id="il_toolkit/PushT-v0", demos=(50, 200), eval_episodes=100, rounds=12, episodes=8, dataset_version="v1",
                  label_budget="bc", dagger_epochs=100, dagger_d0=True, d0_demos=100, small_d0_demos=25,
                  beta_schedule="linear", initial_beta=1.0, stuck_steps=10, on_stuck="end", warm_start=True,
                  task_frame=True, mixture_components=5, bc_epochs=400,
                  target="DAgger >= 80% success and ahead of BC at equal labels"),
    "aloha_transfer": dict(env_id="il_toolkit/AlohaTransferCube-v0", demos=(10, 50), eval_episodes=50, rounds=6, episodes=20,
                           dagger_epochs=50, dagger_d0=True, beta_schedule="constant", initial_beta=0.0, bc_epochs=100,
                           target="DAgger >= 80% success"),
}


def run_bc(env_id: str, demos, n_demos: int, seed: int, epochs: int, eval_episodes: int, out: Path, learner: dict) -> dict:
    from il_toolkit import BehavioralCloning, ILConfig

    config = ILConfig.behavioral_cloning(seed=seed, bc_epochs=epochs, eval_episodes=eval_episodes,
                                         output_dir=str(out / f"bc{n_demos}-s{seed}"), **COMMON, **learner)
    results = BehavioralCloning(env_id, config, progress=False).train(trajectories=demos[:n_demos])
    labels = int(sum(len(t.acts) for t in demos[:n_demos]))
    return {"method": f"bc-{n_demos}", "seed": seed, "expert_labels": labels, "train_seconds": results["train_seconds"],
            **{k: results["eval"][k] for k in ("pc_success", "avg_max_reward", "mean_return")}}


def dagger_fields(setting: dict) -> dict:
    """The ILConfig DAgger fields an env's (possibly overridden) SETTINGS entry names."""
    return dict(dagger_iterations=setting["rounds"], dagger_episodes_per_iter=setting["episodes"],
                bc_epochs=setting["dagger_epochs"], dagger_beta_schedule=setting["beta_schedule"],
                dagger_initial_beta=setting["initial_beta"], dagger_stuck_steps=setting.get("stuck_steps", 0),
                dagger_on_stuck=setting.get("on_stuck", "end"), dagger_warm_start=setting.get("warm_start", False),
                dagger_label_budget=setting.get("label_budget", 0))


def run_dagger(env_id: str, seed: int, eval_episodes: int, out: Path, learner: dict, dagger: dict,
               initial_dataset: str | None = None, method: str = "dagger") -> dict:
    """DAgger with the ILConfig fields in ``dagger`` (:func:`dagger_fields`) and the learner's in ``learner``."""
    from il_toolkit import ILConfig
    from il_toolkit.train.il.dagger import DAgger

    name = method.replace("@", "-at-")
    config = ILConfig.dagger(seed=seed, eval_episodes=eval_episodes, output_dir=str(out / f"{name}-s{seed}"),
                             **dagger, **COMMON, **learner)
    results = DAgger(env_id, None, config, progress=False).train(initial_dataset=initial_dataset)
    return {"method": method, "seed": seed, "expert_labels": results["expert_labels"],
            "train_seconds": results["train_seconds"], "rounds": results["rounds"], "best_round": results["best_round"],
            **{k: results["eval"][k] for k in ("pc_success", "avg_max_reward", "mean_return")}}


def ensure_collected(env_id: str, dataset_id: str, n_demos: int) -> str:
    """``dataset_id`` with the expert's first ``n_demos`` episodes, collected unless it exists; benchmark
    processes started side by side (one per seed) wait for the one collecting it."""
    from il_toolkit.train.datasets.collect import collect_dataset

    collect_dataset(env_id, dataset_id, n_demos, seed=0, progress=True, if_missing=True)
    return dataset_id


def dagger_jobs(methods: list[str], setting: dict, dataset_id: str, labels_of: dict[int, int],
                dagger_row: str = "dagger") -> list:
    """(row name, D0 dataset id or None, DAgger's ILConfig fields) for each DAgger method asked for
    (``dagger_row``: the name of method ``dagger``'s rows). ``labels_of``: the expert labels of each
    BC demo budget; ``dataset_id`` has ``{n}`` for the number of demonstrations (a D0 is collected
    when missing)."""
    def initial_dataset(n_demos: int) -> str | None:
        if not setting.get("dagger_d0"):
            return None
        return ensure_collected(setting["env_id"], dataset_id.format(n=n_demos), n_demos)

    small, large = min(labels_of), max(labels_of)
    jobs = []
    if "dagger" in methods:
        jobs.append((dagger_row, initial_dataset(setting.get("d0_demos") or large), dagger_fields(setting)))
    if "dagger-small" in methods:
        jobs.append((f"dagger@bc-{small}", initial_dataset(setting["small_d0_demos"]),
                     {**dagger_fields(setting), "dagger_label_budget": labels_of[small]}))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=sorted(SETTINGS), default="pusht")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--demos", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        help="BC's two demonstration budgets (default: per env; pusht 50 200, aloha_transfer 10 50)")
    parser.add_argument("--small-d0-demos", type=int, help="--methods dagger-small starts from this many demonstrations "
                        "(default: pusht 25)")
    parser.add_argument("--bc-epochs", type=int, help="BC epochs (default: per env; pusht 400, aloha_transfer 100)")
    parser.add_argument("--dagger-epochs", type=int, help="BC epochs per DAgger round (default: per env)")
    parser.add_argument("--rounds", type=int, help="DAgger rounds (default: per env, see SETTINGS)")
    parser.add_argument("--episodes", type=int, help="DAgger episodes per round (default: per env)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[512, 512, 512], help="MLP hidden layer widths")
    parser.add_argument("--activation", default="gelu", help="MLP activation")
    parser.add_argument("--lr-schedule", default="onecycle", help="constant, cosine or onecycle (each fit / DAgger round)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--drop-velocity-obs", action=argparse.BooleanOptionalAction, default=True,
                        help="the learner leaves out the env's velocity_obs (ALOHA's arm joint velocities)")
    parser.add_argument("--task-frame", action=argparse.BooleanOptionalAction, default=None,
                        help="the learner works in the env's policy_frame (PushT's block frame; default: on for pusht)")
    parser.add_argument("--mixture-components", type=int,
                        help="> 1: the MLP's head is a mixture of this many Gaussians, acting with the heaviest one "
                             "(default: 5 for pusht, 1 otherwise)")
    parser.add_argument("--beta-schedule", help="DAgger's beta schedule: constant, linear, exponential (default: per env)")
    parser.add_argument("--initial-beta", type=float, help="DAgger's initial beta (default: per env)")
    parser.add_argument("--dagger-d0", action=argparse.BooleanOptionalAction, default=None,
                        help="DAgger starts from demonstrations as its initial dataset D0 (the larger set, or "
                             "--d0-demos), its labels counted (default: on)")
    parser.add_argument("--d0-demos", type=int, help="with --dagger-d0: D0 is the first N demonstrations (their own "
                        "dataset, collected from the same seeds) instead of the larger set (default: 100 for pusht)")
    parser.add_argument("--stuck-steps", type=int, help="DAgger: a rollout whose state stood still this many steps is "
                        "stuck (ILConfig.dagger_stuck_steps; 0: off; default: per env)")
    parser.add_argument("--on-stuck", choices=["end", "expert"], help="DAgger: a stuck rollout ends there, or the expert "
                        "acts for the rest of it (ILConfig.dagger_on_stuck; default: per env)")
    parser.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                        help="DAgger: each round continues from the last round's weights (ILConfig.dagger_warm_start) "
                             "instead of a fresh learner (default: per env)")
    parser.add_argument("--label-budget", type=int, help="DAgger stops at this many expert labels, D0's included "
                        "(ILConfig.dagger_label_budget; 0: off; default: pusht the larger BC set's labels, else off)")
    parser.add_argument("--methods", nargs="+", default=["bc", "dagger"], choices=["bc", "dagger", "dagger-small"],
                        help="dagger: DAgger at the larger BC set's labels (pusht; aloha: D0 = that set plus its "
                             "rounds); dagger-small: DAgger at the smaller set's labels, from small_d0_demos (pusht)")
    parser.add_argument("--tag", default="", help="suffix of the results file name (bc_dagger_<env>_<tag>.json)")
    parser.add_argument("--quick", action="store_true", help="1 seed, 20 eval episodes, short training")
    parser.add_argument("--keep-runs", type=Path, help="write the runs (checkpoints, DAgger rounds, metrics) under this "
                        "folder instead of a temporary one")
    parser.add_argument("--combine", nargs="+", metavar="NAME",
                        help="write one results file from these results (benchmarks/results/NAME.json, e.g. one per "
                             "seed) instead of running anything")
    args = parser.parse_args()
    if args.combine:
        return combine(args.env, args.combine, args.tag)
    setting = dict(SETTINGS[args.env])
    if args.demos and not 0 < args.demos[0] < args.demos[1]:
        parser.error(f"--demos SMALL LARGE: need 0 < SMALL < LARGE, got {args.demos[0]} {args.demos[1]}")
    chosen = (("rounds", args.rounds), ("episodes", args.episodes), ("dagger_d0", args.dagger_d0),
              ("dagger_epochs", args.dagger_epochs), ("beta_schedule", args.beta_schedule),
              ("initial_beta", args.initial_beta), ("stuck_steps", args.stuck_steps), ("on_stuck", args.on_stuck),
              ("warm_start", args.warm_start), ("task_frame", args.task_frame), ("d0_demos", args.d0_demos),
              ("mixture_components", args.mixture_components), ("bc_epochs", args.bc_epochs),
              ("label_budget", args.label_budget), ("demos", tuple(args.demos) if args.demos else None),
              ("small_d0_demos", args.small_d0_demos))
    setting.update({k: v for k, v in chosen if v is not None})
    learner = dict(policy_hidden_sizes=args.hidden, policy_activation=args.activation, lr_schedule=args.lr_schedule,
                   learning_rate=args.learning_rate, batch_size=args.batch_size, weight_decay=args.weight_decay,
                   drop_velocity_obs=args.drop_velocity_obs, task_frame=setting.get("task_frame", False),
                   policy_mixture_components=setting.get("mixture_components", 1))
    if args.quick:
        args.seeds = [0]
        setting.update(eval_episodes=20, rounds=3, dagger_epochs=10, bc_epochs=20)
    env_id, (small, large) = setting["env_id"], setting["demos"]
    version = setting.get("dataset_version", "v0")
    dataset = f"bench/{args.env}-expert-{large}-{version}"

    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit.train.datasets.minari_io import load_demonstrations

    demos = load_demonstrations(ensure_collected(env_id, dataset, large))
    labels_of = {n: int(sum(len(t.acts) for t in demos[:n])) for n in (small, large)}
    dagger_row = "dagger"  # the target's row: on PushT, DAgger at the default larger set's labels
    if setting.get("label_budget") == "bc":
        setting["label_budget"] = labels_of[large]
        if large != SETTINGS[args.env]["demos"][1]:
            dagger_row = f"dagger@bc-{large}"
    if "dagger-small" in args.methods and not setting.get("small_d0_demos"):
        parser.error(f"--methods dagger-small: {args.env} has no small_d0_demos in SETTINGS")
    jobs = dagger_jobs(args.methods, setting, f"bench/{args.env}-expert-{{n}}-{version}", labels_of, dagger_row)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep_runs or Path(tmp)
        for seed in args.seeds:
            for n_demos in (small, large) if "bc" in args.methods else ():
                start = time.perf_counter()
                rows.append(run_bc(env_id, demos, n_demos, seed, setting["bc_epochs"], setting["eval_episodes"], out, learner))
                print(f"seed {seed} bc-{n_demos}: success {rows[-1]['pc_success']:.0f}%, avg max reward "
                      f"{rows[-1]['avg_max_reward']:.3f}, {rows[-1]['expert_labels']} labels, {time.perf_counter() - start:.0f} s")
            for method, d0, fields in jobs:
                start = time.perf_counter()
                rows.append(run_dagger(env_id, seed, setting["eval_episodes"], out, learner, fields, d0, method))
                print(f"seed {seed} {method}: success {rows[-1]['pc_success']:.0f}%, avg max reward "
                      f"{rows[-1]['avg_max_reward']:.3f}, {rows[-1]['expert_labels']} labels, {time.perf_counter() - start:.0f} s")
    summary, met = summarize(args.env, rows)
    print(f"target {setting['target']}: {verdict(met)}; load average {os.getloadavg()[0]:.1f}")
    write_results(f"bc_dagger_{args.env}" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else ""), {
        "settings": {**{k: v for k, v in vars(args).items() if k != "combine"}, **setting, **COMMON, **learner,
                     "policy": "MLPPolicy: " + ("the env's policy_frame (ILConfig.task_frame)" if learner["task_frame"]
                                                else "actions as offsets from env.action_reference (ILConfig.relative_actions)")},
        "rows": rows, "summary": summary,
        "target": setting["target"], "target_met": met, "load_average": os.getloadavg(),
    })


def summarize(env: str, rows: list[dict]) -> tuple[dict, bool | None]:
    """Mean success, max reward and labels per method over the seeds, BC in increasing labels, each
    followed by the DAgger rows compared with it (those whose labels it holds, within 1%, with the
    fewest); whether the target is met (None: not judged, without a ``dagger`` row, or on PushT
    without a BC row to compare it with)."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        chosen = [r for r in rows if r["method"] == method]
        summary[method] = {"mean_pc_success": float(np.mean([r["pc_success"] for r in chosen])),
                           "mean_avg_max_reward": float(np.mean([r["avg_max_reward"] for r in chosen])),
                           "mean_expert_labels": float(np.mean([r["expert_labels"] for r in chosen])),
                           "seeds": [r["seed"] for r in chosen]}
    # DAgger method -> the BC method with the fewest labels at least its own (1% slack): DAgger may stop short of
    # its budget at its last round, and a comparison with BC holding more labels is not in DAgger's favour
    labels = {m: v["mean_expert_labels"] for m, v in summary.items()}
    bcs = sorted((m for m in summary if m.startswith("bc-")), key=labels.get)
    pairs = {}
    for method in (m for m in summary if m.startswith("dagger")):
        bc = next((b for b in bcs if labels[b] >= 0.99 * labels[method]), None)
        if bc is not None:
            pairs[method] = bc
    position = {m: (labels[pairs.get(m, m)], m.startswith("dagger"), labels[m]) for m in summary}
    summary = {m: summary[m] for m in sorted(summary, key=position.get)}
    for method in summary:
        print(f"{method}: success {summary[method]['mean_pc_success']:.1f}% (mean over seeds "
              f"{summary[method]['seeds']}), avg max reward {summary[method]['mean_avg_max_reward']:.3f}, "
              f"labels {summary[method]['mean_expert_labels']:.0f}")
    for method, bc in ((m, pairs[m]) for m in summary if m in pairs):
        print(f"at {bc}'s labels: DAgger {summary[method]['mean_pc_success']:.1f}% vs BC {summary[bc]['mean_pc_success']:.1f}% "
              f"({labels[method]:.0f} vs {labels[bc]:.0f} labels)")
    if "dagger" not in summary:
        return summary, None
    met: bool | None = summary["dagger"]["mean_pc_success"] >= 80
    if env == "pusht" and met:
        met = None if "dagger" not in pairs else summary["dagger"]["mean_pc_success"] > summary[pairs["dagger"]]["mean_pc_success"]
    return summary, met


def verdict(met: bool | None) -> str:
    return "not judged (no dagger row, or no BC row at its labels: --combine them with a BC run)" if met is None else (
        "met" if met else "MISSED")


def combine(env: str, names: list[str], tag: str) -> None:
    """One results file from runs written separately (seeds or methods run side by side):
    their rows together, the summary recomputed, each part's settings kept."""
    import json

    parts = {name: json.loads((RESULTS_DIR / f"{name}.json").read_text()) for name in names}
    rows = [row for part in parts.values() for row in part["rows"]]
    summary, met = summarize(env, rows)
    print(f"target {SETTINGS[env]['target']}: {verdict(met)}")
    write_results(f"bc_dagger_{env}" + (f"_{tag}" if tag else ""), {
        "combined_from": {name: ({"combined_from": part["combined_from"]} if "combined_from" in part  # a combined file
                                 else {"settings": part["settings"], "environment": part.get("environment")})
                          for name, part in parts.items()},
        "rows": rows, "summary": summary, "target": SETTINGS[env]["target"], "target_met": met,
    })


if __name__ == "__main__":
    main()
