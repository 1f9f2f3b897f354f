"""Success against expert labels: BC and the DAgger variants (DAgger, HG-DAgger with a simulated
person, EnsembleDAgger, ThriftyDAgger) on PushT or ALOHA state, all with the same learner.

Everything goes through the public API, as a user's script would: ``collect_dataset`` (the
scripted expert's demonstrations, seeds 0, 1, ...), ``BehavioralCloning`` and ``DAgger`` with
``ILConfig(dagger_variant=...)`` and the env's learner (PushT: ``policy_type="flow"``, an MLP
velocity net on the env's features, horizon 1; ALOHA: the 3x512 GELU MLP with actions relative to
the arm that ``bc_dagger.py`` measured, DAgger rolling out the learner alone, β = 0; or with
``--learner flow_chunks`` a flow-matching policy over chunks of 8 actions, each executed in full, which
each DAgger round continues from the last round's weights), trained for ``--epochs`` passes over its
data at batch 256, and ``evaluate_checkpoint`` on unseen seeds from 1,000,000.

- BC: one fit per demonstration budget (``--bc-demos``); its labels are its demonstrations' steps.
- Each DAgger variant starts from the first ``--d0`` demonstrations (their labels counted), fits
  a learner on them, then runs ``--rounds`` rounds of ``--episodes`` episodes; every round's
  policy is evaluated, so each run gives a curve of success against the expert labels it had
  spent by then (labels: states the expert labelled; HG-DAgger's simulated person also watches
  every step, which is reported as ``expert_queries``, not counted as labels).

Writes ``benchmarks/results/<name>.json`` (default ``interactive_labels_<env>``) with every
point, the mean curve per method, and the wall-clock per round (``--ensemble-size`` learners).

    .venv/bin/python benchmarks/interactive_labels.py --seeds 0 1 --workers 2
    .venv/bin/python benchmarks/interactive_labels.py --env aloha_transfer --methods bc dagger hg_dagger --workers 2
    .venv/bin/python benchmarks/interactive_labels.py --env aloha_insertion --learner flow_chunks --methods bc hg_dagger
    .venv/bin/python benchmarks/interactive_labels.py --env aloha_insertion --learner flow_chunks --methods dagger \
        --chunk-labels visited --name interactive_labels_aloha_insertion_flow_chunks_visited
    .venv/bin/python benchmarks/interactive_labels.py --quick      # a smoke run, about a minute
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402

VARIANTS = ("dagger", "hg_dagger", "ensemble_dagger", "thrifty_dagger")
ALOHA_LEARNER = dict(policy_type="mlp", policy_hidden_sizes=[512, 512, 512], policy_activation="gelu",
                     lr_schedule="onecycle", weight_decay=1e-4, dagger_beta_schedule="constant", dagger_initial_beta=0.0)
ALOHA_BUDGETS = dict(bc_demos=[10, 20, 50, 100], d0=10, rounds=6, episodes=10, epochs=100, eval_episodes=50)
FLOW_CHUNKS = (dict(policy_type="flow", action_chunk_size=8, dagger_beta_schedule="constant", dagger_initial_beta=0.0,
                    dagger_warm_start=True),
               "flow matching, MLP velocity net, chunks of 8 actions executed in full, env features; DAgger rolls out "
               "the learner alone (beta 0) and continues each round from the last round's weights",
               dict(bc_demos=[10, 20, 50], d0=10, rounds=4, episodes=5, epochs=600, eval_episodes=50))
ENVS = {  # env id, learner (ILConfig fields), its description, budgets where a flag is not given
    "pusht": ("il_toolkit/PushT-v0", dict(policy_type="flow"), "flow matching, MLP velocity net, horizon 1, env features",
              dict(bc_demos=[10, 20, 30, 50], d0=10, rounds=5, episodes=8, epochs=150, eval_episodes=50)),
    "aloha_transfer": ("il_toolkit/AlohaTransferCube-v0", ALOHA_LEARNER, "MLP 3x512 GELU, one-cycle, actions relative "
                       "to the arm; DAgger rolls out the learner alone (beta 0)", ALOHA_BUDGETS),
    "aloha_insertion": ("il_toolkit/AlohaInsertion-v0", ALOHA_LEARNER, "MLP 3x512 GELU, one-cycle, actions relative "
                        "to the arm; DAgger rolls out the learner alone (beta 0)", ALOHA_BUDGETS),
}


def dataset_id(args: argparse.Namespace, demos: int) -> str:
    return f"bench/{args.env}-expert-{demos}-v0"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="pusht", choices=sorted(ENVS))
    parser.add_argument("--learner", default="env", choices=("env", "flow_chunks"),
                        help="env: the env's learner (PushT: flow, horizon 1; ALOHA: the 3x512 MLP); flow_chunks: a "
                             "flow policy over chunks of 8 actions, warm-started each DAgger round")
    parser.add_argument("--methods", nargs="+", default=["bc", *VARIANTS], choices=["bc", *VARIANTS])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="training seeds")
    parser.add_argument("--bc-demos", nargs="+", type=int, default=None,
                        help="BC's demonstration budgets (default: PushT 10 20 30 50, ALOHA 10 20 50 100)")
    parser.add_argument("--d0", type=int, default=None, help="demonstrations the DAgger variants start from (default 10)")
    parser.add_argument("--rounds", type=int, default=None, help="default: PushT 5, ALOHA 6")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per round (default: PushT 8, ALOHA 10)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="passes over the data per fit, batch 256 (default: PushT 150, ALOHA 100)")
    parser.add_argument("--chunk-labels", default="auto", choices=("auto", "expert_chunks", "visited"),
                        help="plain DAgger with a chunked learner: the expert's own chunk from each state where the "
                             "learner plans, acted out in a branch of the simulation (expert_chunks; auto where the env "
                             "can branch, as ALOHA's can), or its labels of the states the learner visits (visited)")
    parser.add_argument("--warm-start", action=argparse.BooleanOptionalAction, default=None,
                        help="DAgger rounds continue from the last round's weights (default: the learner's setting; "
                             "flow_chunks: yes) or train afresh on the aggregate (--no-warm-start)")
    parser.add_argument("--intervention-threshold", type=float, default=None,
                        help="HG-DAgger's simulated person takes over where the learner's action strays from the "
                             "expert's by more than this (RMS in half-ranges; default: ILConfig's)")
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--query-rate", type=float, default=0.1, help="ensemble/thrifty target query rate")
    parser.add_argument("--eval-episodes", type=int, default=None, help="default 50")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep every run's output (checkpoints per round, the DAgger aggregate) here, and resume "
                             "DAgger runs found there after their last finished round (with another --rounds they stop "
                             "there or go on; plain DAgger's linear beta schedule excepted); timings add up each round's "
                             "own record, whichever call ran it; BC fits are redone (default: a temporary directory)")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the script runs")
    parser.add_argument("--name", default=None, help="default: interactive_labels_<env>")
    parser.add_argument("--update", action="store_true",
                        help="replace only --methods' rows in the existing results file (same settings otherwise)")
    args = parser.parse_args()
    for key, value in learner(args)[2].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.name = args.name or f"interactive_labels_{args.env}" + ("" if args.learner == "env" else f"_{args.learner}")
    return args


def learner(args: argparse.Namespace) -> tuple[dict, str, dict]:
    """The learner's ILConfig fields, its description and the budgets where a flag is not given."""
    fields, description, budgets = FLOW_CHUNKS if args.learner == "flow_chunks" else ENVS[args.env][1:]
    if args.warm_start is not None and args.warm_start != fields.get("dagger_warm_start", False):
        fields = {**fields, "dagger_warm_start": args.warm_start}
        description += "; DAgger rounds " + ("continue from the last round's weights" if args.warm_start else
                                             "train a fresh learner on the aggregate")
    return fields, description, budgets


def config(args: argparse.Namespace, seed: int, output_dir: str, **overrides):
    from il_toolkit import ILConfig

    return ILConfig.dagger(**{**learner(args)[0], **overrides}, bc_epochs=args.epochs, batch_size=256,
                           learning_rate=1e-3, seed=seed, eval_episodes=args.eval_episodes, output_dir=output_dir,
                           use_wandb=False)


def evaluate(path: Path, args: argparse.Namespace) -> float:
    from il_toolkit.evaluation import evaluate_checkpoint

    return float(evaluate_checkpoint(path, ENVS[args.env][0], args.eval_episodes, num_envs=1).aggregates["pc_success"])


def run_bc(args: argparse.Namespace, seed: int, demos: int, tmp: str) -> dict:
    from il_toolkit import BehavioralCloning, load_demonstrations
    from il_toolkit.envs import make_env

    env = make_env(ENVS[args.env][0])
    trajectories = load_demonstrations(dataset_id(args, demos), env=env)
    start = time.perf_counter()
    bc = BehavioralCloning(env, config(args, seed, f"{tmp}/bc-{demos}-s{seed}", bc_validation_split=0.0),
                           progress=False, overwrite=True)  # a BC fit in a kept --work-dir is redone
    result = bc.train(trajectories=trajectories, evaluate_policy=False)
    seconds = time.perf_counter() - start
    success = evaluate(Path(result["policy_path"]), args)
    labels = int(sum(len(t.acts) for t in trajectories))
    print(f"bc seed {seed}, {demos} demos ({labels} labels): {success:.0f}% ({seconds:.0f} s)", flush=True)
    return {"method": "bc", "seed": seed, "demos": demos, "points": [{"labels": labels, "pc_success": success}],
            "train_seconds": round(seconds, 1)}


def run_variant(args: argparse.Namespace, seed: int, variant: str, tmp: str) -> dict:
    from il_toolkit import DAgger
    from il_toolkit.envs import make_env

    out = Path(tmp) / f"{variant}-s{seed}"
    cfg = config(args, seed, str(out), dagger_variant=variant, dagger_iterations=args.rounds,
                 dagger_episodes_per_iter=args.episodes, dagger_ensemble_size=args.ensemble_size,
                 dagger_target_query_rate=args.query_rate, bc_validation_split=0.0,
                 **({"dagger_intervention_threshold": args.intervention_threshold}
                    if args.intervention_threshold is not None else {}),
                 **({"dagger_chunk_labels": args.chunk_labels} if variant == "dagger" else {}))
    start = time.perf_counter()
    results = DAgger(make_env(ENVS[args.env][0]), None, cfg, progress=False).train(initial_dataset=dataset_id(args, args.d0))
    seconds = time.perf_counter() - start
    points = []
    for record in results["rounds"]:
        success = evaluate(out / "rounds" / f"{record['round']:03d}", args)
        points.append({"round": record["round"], "labels": record["expert_labels"], "pc_success": success,
                       "round_labels": record["round/expert_labels"], "interventions": record["round/interventions"],
                       "context_switches": record["round/context_switches"],
                       "expert_share": round(record["round/expert_share"], 3),
                       "expert_queries": record["round/expert_queries"]})
        print(f"{variant} seed {seed} round {record['round']}: {record['expert_labels']} labels, {success:.0f}% "
              f"(expert share {record['round/expert_share']:.2f}, {record['round/context_switches']} switches)", flush=True)
    round_seconds = [record.get("round/seconds") for record in results["rounds"]]
    timing = "this call's clock (rounds recorded no time of their own)"
    per_round = seconds / max(len(points), 1)
    if round_seconds and None not in round_seconds:  # every round, whichever call ran it; no final evaluation
        timing = "initial fit + each round's own record (rollouts, fit, its evaluation rollouts)"
        per_round = sum(round_seconds) / len(round_seconds)
        seconds = (results["initial_fit_seconds"] or 0.0) + sum(round_seconds)
    return {"method": variant, "seed": seed, "points": points, "labels": results["labels"],
            "chunk_labels": results["chunk_labels"],
            "train_seconds": round(seconds, 1), "seconds_per_round": round(per_round, 1), "timing": timing}


def job(spec: tuple) -> dict:
    import torch

    torch.set_num_threads(1)
    kind, args, seed, what, tmp = spec
    return run_bc(args, seed, what, tmp) if kind == "bc" else run_variant(args, seed, what, tmp)


def summarise(rows: list[dict], args: argparse.Namespace) -> dict:
    """Per method: mean success per BC budget, or per round (mean labels spent by then)."""
    summary: dict = {}
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        if method == "bc":
            summary["bc"] = [{"demos": n, "labels": float(np.mean([r["points"][0]["labels"] for r in mine if r["demos"] == n])),
                              "pc_success": float(np.mean([r["points"][0]["pc_success"] for r in mine if r["demos"] == n])),
                              "per_seed": [r["points"][0]["pc_success"] for r in mine if r["demos"] == n]}
                             for n in args.bc_demos]
        else:
            rounds = min((len(r["points"]) for r in mine), default=0)
            summary[method] = [{"round": i + 1, "labels": float(np.mean([r["points"][i]["labels"] for r in mine])),
                                "pc_success": float(np.mean([r["points"][i]["pc_success"] for r in mine])),
                                "per_seed": [r["points"][i]["pc_success"] for r in mine],
                                "expert_share": float(np.mean([r["points"][i]["expert_share"] for r in mine]))}
                               for i in range(rounds)]
    return summary


def main() -> None:
    args = parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    if args.quick:
        args.bc_demos, args.d0, args.rounds, args.episodes, args.epochs = [3, 5], 3, 2, 2, 5
        args.eval_episodes, args.seeds, args.ensemble_size = 2, args.seeds[:1], 2
    from il_toolkit import ILConfig, collect_dataset

    for n in sorted({*args.bc_demos, args.d0}):
        collect_dataset(ENVS[args.env][0], dataset_id(args, n), n, seed=0, num_envs=2, progress=False, if_missing=True)
    with contextlib.nullcontext(str(args.work_dir)) if args.work_dir else tempfile.TemporaryDirectory() as tmp:
        jobs = [("bc", args, s, n, tmp) for s in args.seeds for n in args.bc_demos if "bc" in args.methods]
        jobs = [("variant", args, s, v, tmp) for v in args.methods if v != "bc" for s in args.seeds] + jobs
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers) as pool:
                rows = list(pool.map(job, jobs))
        else:
            rows = [job(spec) for spec in jobs]
    if args.update and (RESULTS_DIR / f"{args.name}.json").exists():
        import json

        kept = [r for r in json.loads((RESULTS_DIR / f"{args.name}.json").read_text())["rows"]
                if r["method"] not in args.methods]
        rows = kept + rows
        args.methods = [m for m in ["bc", *VARIANTS] if any(r["method"] == m for r in rows)]
        args.seeds = sorted({r["seed"] for r in rows})
    summary = summarise(rows, args)
    for method, curve in summary.items():
        print(method + ": " + ", ".join(f"{p['labels']:.0f} labels {p['pc_success']:.0f}%" for p in curve))
    ensemble_rounds = [r["seconds_per_round"] for r in rows if r["method"] in ("ensemble_dagger", "thrifty_dagger")]
    write_results(args.name, {
        "settings": {"env_id": ENVS[args.env][0], "learner": learner(args)[1], "learner_config": learner(args)[0],
                     "epochs_per_fit": args.epochs, "batch_size": 256, "learning_rate": 1e-3, "d0_demos": args.d0,
                     "rounds": args.rounds, "episodes_per_round": args.episodes, "ensemble_size": args.ensemble_size,
                     "target_query_rate": args.query_rate, "chunk_labels": args.chunk_labels,
                     "intervention_threshold": (args.intervention_threshold if args.intervention_threshold is not None
                                                else ILConfig().dagger_intervention_threshold),
                     "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000, "seeds": args.seeds,
                     "workers": args.workers},
        "summary": summary,
        "seconds_per_round_with_ensemble": float(np.mean(ensemble_rounds)) if ensemble_rounds else None,
        "rows": rows,
    })


if __name__ == "__main__":
    main()
