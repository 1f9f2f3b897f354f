"""The flow-matching family on state envs (PushT, ALOHA): scripted demonstrations in, success over unseen seeds out.

Everything goes through the public API, as a user's script would: ``collect_dataset`` (the
env's scripted expert, seeds 0, 1, ..., into a Minari dataset), ``load_demonstrations``,
``train_flow_policy`` with the env's feature pipeline (``default_state_features``; PushT: the
T's task frame, pusher targets relative to the pusher; ALOHA: no arm velocities, joint targets
relative to the joints) or, with ``--raw-state``, on the raw state as before the shared
pipeline, then ``evaluate_checkpoint`` on seeds from 1,000,000 (never seen in training;
success is the env's own signal, and the mean of each episode's maximum reward, PushT's maximum
coverage). Training is budgeted in **steps**, not wall-clock, so the figures do not depend on
the machine's load; the wall-clock each run took is reported beside them. Unset settings are
``il-toolkit train flow``'s defaults for the env.

    .venv/bin/python benchmarks/flow_state.py                          # PushT: six trainers x 3 seeds
    .venv/bin/python benchmarks/flow_state.py --env aloha_transfer --trainers naive_flow_matching_policy_trainer
    .venv/bin/python benchmarks/flow_state.py --trainers naive_flow_matching_policy_trainer --seeds 0 \\
        --horizon 16 --n-obs-steps 2 --n-action-steps 8 --also-execute 4 1 --name flow_state_pusht_chunks

Fewer ODE steps: ``--also-ode-steps 1 2 5 10 --also-solvers euler midpoint rk4`` evaluates every
checkpoint at each of those integration settings (inference settings: the weights are the same)
and times a chunk at each on every trainer's first checkpoint (batch 1, on one thread and on two), so the
summary holds each trainer's success/latency curve and the fastest setting that keeps >= 95% of
the success at the policy's own setting (10 Euler steps) on every seed; the curve is also drawn to ``<name>_ode_curve.png``.
``--latency`` times the chunks without evaluating the grid (``flow_step_cost.py`` measures the
cost of a training step). Writes ``benchmarks/results/<name>.json`` (default ``flow_state_<env>``). ``--reevaluate SOURCE
--keep-checkpoints DIR --eval-episodes N --name NEW`` trains nothing: it evaluates a run's kept checkpoints again at
every setting that run evaluated (and at ``--also-ode-steps`` settings it did not), on more episodes (one standard error of a success rate near 50% is 7 points over
50 episodes, 3.5 over 200).

    .venv/bin/python benchmarks/flow_state.py --also-ode-steps 1 2 5 10 --also-solvers euler midpoint rk4 \\
        --name flow_state_pusht_ode

``--reflow-from DIR`` (a run's ``--keep-checkpoints``) trains nothing from scratch: each trainer/seed's kept
checkpoint is reflowed (``il_toolkit.train.imitation_learning.reflow``: a copy fine-tuned on the (noise, chunk)
pairs of its own ODE, ``--reflow-noises`` per window, ``--steps`` / ``--learning-rate`` defaulting to reflow's)
and the result evaluated like a trained one, ``--also-ode-steps`` included; it keeps its checkpoint's chunk and
velocity net, so the options that would shape a new policy (``--horizon``, ``--mlp-width``, ...) are refused.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS_DIR, write_results  # noqa: E402
from _flow_options import add_spec_options, spec_options  # noqa: E402
from il_toolkit.model.spec import MLP_TIME_EMBEDDINGS  # noqa: E402

ENVS = {  # env id, demonstrations, evaluation episodes
    "pusht": ("il_toolkit/PushT-v0", 200, 100),
    "aloha_transfer": ("il_toolkit/AlohaTransferCube-v0", 50, 50),
    "aloha_insertion": ("il_toolkit/AlohaInsertion-v0", 50, 50),
}
DATASET = "bench/{env}-expert-{n}-v0"
SOLVERS = ("euler", "midpoint", "rk4")
LATENCY_STEPS = (1, 2, 5, 10)
KEEP_FRACTION = 0.95  # a cheaper ODE setting "keeps" the success when it reaches this share of the policy's own setting's
DEFAULT_TRAINERS = (
    "naive_flow_matching_policy_trainer",
    "vfp_single_expert_trainer",
    "mutual_information_estimator_trainer",
    "cfg_vqvae_flow_matching_trainer_kot",
    "variational_flow_matching_policy_trainer",
    "vfp_single_expert_trainer_depth",
)


# spec fields of the MLP velocity net (None: default)
MLP_OPTIONS = ("mlp_width", "mlp_layers", "mlp_time_embedding", "mlp_expert_width")

# Options that shape a policy's chunk or net; a reflowed policy keeps its teacher's.
ARCHITECTURE_OPTIONS = ("horizon", "n_obs_steps", "n_action_steps", "velocity_net", *MLP_OPTIONS, "raw_state",
                        "action_statistics", "shortcut_steps", "shortcut_fraction", "shortcut_ema_decay")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="pusht", choices=sorted(ENVS))
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS), help="TRAINER_REGISTRY keys")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds")
    parser.add_argument("--demos", type=int, default=None, help="expert demonstrations (default: PushT 200, ALOHA 50)")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default: the flow CLI's for PushT)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: the flow CLI's")
    parser.add_argument("--horizon", type=int, default=None, help="actions per chunk (default: the flow CLI's for PushT)")
    parser.add_argument("--n-obs-steps", type=int, default=None)
    parser.add_argument("--n-action-steps", type=int, default=None)
    parser.add_argument("--velocity-net", default="auto", choices=("auto", "mlp", "transformer"))
    parser.add_argument("--mlp-width", type=int, default=None, help="MLP velocity net width (default: the spec's)")
    parser.add_argument("--mlp-layers", type=int, default=None, help="MLP velocity net hidden layers (default: the spec's)")
    parser.add_argument("--mlp-expert-width", type=int, default=None,
                        help="width of each expert MLP of the variational trainer's mixture (default: the spec's, "
                             "the net's width / sqrt(experts))")
    parser.add_argument("--mlp-time-embedding", default=None, choices=MLP_TIME_EMBEDDINGS,
                        help="the MLP velocity net's time input: its sinusoids as they are, or through a small MLP "
                             "(default: train flow's, plain sinusoids for a horizon of 1, the MLP for chunks)")
    add_spec_options(parser)
    parser.add_argument("--raw-state", action="store_true", help="no feature pipeline: the raw board coordinates")
    parser.add_argument("--eval-episodes", type=int, default=None, help="default: PushT 100, ALOHA 50")
    parser.add_argument("--also-execute", nargs="+", type=int, default=[], metavar="N",
                        help="also evaluate each chunked checkpoint executing N actions per chunk (receding horizon)")
    parser.add_argument("--temporal-ensemble", type=float, default=None, metavar="K",
                        help="also evaluate each checkpoint re-planning every step, ACT's temporal ensembling with weight K")
    parser.add_argument("--latency", action="store_true", help="also time chunks against ODE steps and solvers")
    parser.add_argument("--quick", action="store_true", help="20 demos, 300 steps, 10 episodes: a smoke run")
    parser.add_argument("--also-ode-steps", nargs="+", type=int, default=[], metavar="N",
                        help="also evaluate each checkpoint integrating with N steps of each --also-solvers solver")
    parser.add_argument("--also-solvers", nargs="+", default=["euler"], choices=SOLVERS,
                        help="ODE solvers for --also-ode-steps")
    parser.add_argument("--keep-checkpoints", type=Path, default=None, metavar="DIR",
                        help="save the trained checkpoints here instead of a temporary directory")
    parser.add_argument("--reflow-from", type=Path, default=None, metavar="DIR",
                        help="train nothing from scratch: reflow (Liu et al. 2023) each trainer/seed's checkpoint kept "
                             "in DIR (--keep-checkpoints of an earlier run) on its own ODE's (noise, chunk) pairs; "
                             "--steps / --learning-rate then default to reflow's")
    parser.add_argument("--reflow-noises", type=int, default=None, metavar="K", help="with --reflow-from: noises per window")
    parser.add_argument("--name", default=None, help="results file name (default flow_state_<env>)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--reevaluate", default=None, metavar="SOURCE",
                       help="train nothing: evaluate the checkpoints the run that wrote results/SOURCE.json kept in "
                            "--keep-checkpoints again, at every inference setting it evaluated, on --eval-episodes "
                            "episodes from the same first seed; writes results/NAME.json (NAME: --name)")
    again.add_argument("--retime", action="store_true",
                        help="train nothing: time the chunks of the checkpoints an earlier run kept in --keep-checkpoints "
                             "again (on a quieter machine) and recompute the results file's curves from its rows")
    args = parser.parse_args()
    if args.reflow_from is not None:
        given = [f"--{dest.replace('_', '-')}" for dest in ARCHITECTURE_OPTIONS if getattr(args, dest) != parser.get_default(dest)]
        if given:
            parser.error(f"--reflow-from keeps each checkpoint's own chunk and velocity net: drop {', '.join(given)}")
    return args


def expert_demonstrations(env_key: str, n_demos: int | None = None, env=None) -> tuple[str, list]:
    """The Minari id and the episodes of ``env_key``'s expert dataset (``n_demos`` episodes, default the
    benchmark's; collected with seeds 0, 1, ... where missing), loaded for ``env`` (default: made here)."""
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit import collect_dataset, load_demonstrations
    from il_toolkit.envs import make_env

    env_id, default_demos, _ = ENVS[env_key]
    n_demos = n_demos or default_demos
    dataset = DATASET.format(env=env_key, n=n_demos)
    collect_dataset(env_id, dataset, n_demos, seed=0, num_envs=2, progress=False, if_missing=True)
    return dataset, load_demonstrations(dataset, env=env if env is not None else make_env(env_id))


def run(trainer: str, seed: int, demos, env, args: argparse.Namespace, settings: dict, out: Path) -> dict:
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.policies import load
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.imitation_learning.reflow import reflow_policy

    features = None if args.raw_state else default_state_features(env)
    spec_fields = {"horizon": settings["horizon"], "n_obs_steps": settings["n_obs_steps"], "velocity_net": args.velocity_net,
                   **spec_options(args)}
    spec_fields.update({name: getattr(args, name) for name in MLP_OPTIONS if getattr(args, name) is not None})
    if trainer.endswith("_depth"):
        return {"trainer": trainer, "seed": seed, "skipped": "trains on depth images; a state env has none"}
    start = time.perf_counter()
    if args.reflow_from is not None:
        policy = reflow_policy(load(checkpoint_path(args.reflow_from, trainer, seed)), demos, steps=settings["steps"],
                               learning_rate=settings["learning_rate"], batch_size=args.batch_size, seed=seed,
                               noises_per_window=settings["reflow_noises"], observation_space=env.observation_space,
                               action_space=env.action_space)
    else:
        policy = train_flow_policy(
            trainer, demos, env.observation_space, env.action_space, steps=settings["steps"], batch_size=args.batch_size,
            learning_rate=settings["learning_rate"], seed=seed, spec_fields=spec_fields, features=features,
            policy_options={"n_action_steps": settings["n_action_steps"]},
        )
    train_seconds = time.perf_counter() - start
    path = policy.save(checkpoint_path(out, trainer, seed))
    own = scores(evaluate_checkpoint(path, args.env_id, args.eval_episodes, num_envs=2))
    row = {"trainer": trainer, "seed": seed, **own, "train_steps": settings["steps"], "train_seconds": round(train_seconds, 1),
           "steps_per_second": round(settings["steps"] / train_seconds, 1),
           "parameters": int(sum(p.numel() for p in policy.parameters())), "velocity_net": policy.spec.velocity_net,
           **{name: getattr(policy.spec, name) for name in MLP_OPTIONS},
           "solver": policy.solver, "n_steps": policy.n_steps}
    print(f"{trainer} seed {seed}: {own['pc_success']:.0f}% success, avg max reward {own['avg_max_reward']:.3f}, "
          f"{settings['steps']} steps in {train_seconds:.0f} s", flush=True)
    for key, variant in inference_variants(args, settings, policy):
        variant_path = save_variant(path, variant, checkpoint_path(out, trainer, seed, variant))
        variant_scores = scores(evaluate_checkpoint(variant_path, args.env_id, args.eval_episodes, num_envs=2))
        row.setdefault(key, []).append({**variant, **variant_scores})
        print(f"  {variant_label(variant)}: {variant_scores['pc_success']:.0f}% success", flush=True)
    return row


SCORE_KEYS = ("pc_success", "avg_max_reward", "eval_seconds")


def scores(result) -> dict:
    """A row's (or an inference variant's) ``SCORE_KEYS`` from an ``evaluate_checkpoint`` result."""
    return {"pc_success": result.aggregates["pc_success"], "avg_max_reward": round(result.aggregates["avg_max_reward"], 4),
            "eval_seconds": round(result.seconds, 1)}


def variant_label(variant: dict) -> str:
    """``attribute=value-...`` for an inference variant (its scores, where stored beside it, left out)."""
    return "-".join(f"{attribute}={value}" for attribute, value in variant.items() if attribute not in SCORE_KEYS)


def save_variant(path: Path, variant: dict, target: Path) -> Path:
    """The checkpoint at ``path`` saved again at ``target`` with other inference settings (``variant``: policy
    attribute -> value; the weights are the same)."""
    from il_toolkit.policies import load

    policy = load(path)
    for attribute, value in variant.items():
        setattr(policy, attribute, value)
    return policy.save(target)


def success_summary(rows: list[dict]) -> dict:
    """Mean success over a trainer's evaluated rows (training seeds), and each seed's."""
    return {"mean_pc_success": round(float(np.mean([r["pc_success"] for r in rows])), 1),
            "per_seed": [r["pc_success"] for r in rows]}


def checkpoint_path(out: Path, trainer: str, seed: int, variant: dict | None = None) -> Path:
    """Where a run keeps a trained checkpoint (``variant``: the same weights saved with other inference settings)."""
    return out / (f"{trainer}-s{seed}" + (f"-{variant_label(variant)}" if variant else ""))


def inference_variants(args: argparse.Namespace, settings: dict, policy) -> list[tuple[str, dict]]:
    """``(row key, {policy attribute: value})`` for each other inference setting to evaluate a checkpoint with."""
    variants = [("execution_variants", {"n_action_steps": n}) for n in args.also_execute if n != settings["n_action_steps"]]
    if args.temporal_ensemble is not None:
        variants.append(("execution_variants", {"temporal_ensemble_coeff": args.temporal_ensemble}))
    for solver in args.also_solvers:
        for n_steps in args.also_ode_steps:
            if (solver, n_steps) != (policy.solver, policy.n_steps):
                variants.append(("ode_variants", {"solver": solver, "n_steps": n_steps}))
    return variants


def latency(path: Path, steps: tuple[int, ...] = LATENCY_STEPS) -> list[dict]:
    """Median ms per chunk (batch 1) for each ODE step count and solver: ``ms_per_chunk`` on one thread, as
    the benchmark trains and evaluates, and ``ms_per_chunk_two_threads`` on two."""
    from il_toolkit.policies import load

    policy = load(path)
    window = {"observation.state": torch.zeros(1, policy.spec.n_obs_steps, policy.spec.state_dim)}

    def median_ms(n_steps: int, solver: str) -> float:
        times = []
        for _ in range(60):
            start = time.perf_counter()
            policy.predict_chunk(window, n_steps=n_steps, solver=solver)
            times.append(time.perf_counter() - start)
        return round(1000 * float(np.median(times[10:])), 3)

    rows = {}
    threads_before = torch.get_num_threads()
    try:
        for threads, field in ((1, "ms_per_chunk"), (2, "ms_per_chunk_two_threads")):
            torch.set_num_threads(threads)
            warm_until = time.perf_counter() + 0.5  # the first setting timed was up to 1.7x slower than the next without it
            while time.perf_counter() < warm_until:
                policy.predict_chunk(window, n_steps=max(steps), solver="euler")
            for solver in SOLVERS:
                for n_steps in steps:
                    row = rows.setdefault((solver, n_steps), {"solver": solver, "ode_steps": n_steps})
                    row[field] = median_ms(n_steps, solver)
    finally:
        torch.set_num_threads(threads_before)
    return list(rows.values())


EVALUATIONS_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}


def ode_curve(rows: list[dict], timings: list[dict]) -> dict:
    """One trainer's success against ODE setting: per (solver, steps) the success per seed, its share
    of the success at the policy's own setting (each row's), velocity-net evaluations and ms per
    chunk; ``cheapest_kept``: the fastest setting whose share is >= ``KEEP_FRACTION`` on every seed."""
    ms = {(t["solver"], t["ode_steps"]): t["ms_per_chunk"] for t in timings}
    ms_two = {(t["solver"], t["ode_steps"]): t.get("ms_per_chunk_two_threads") for t in timings}
    settings: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in rows:
        base = row["pc_success"]
        own = (row.get("solver", "euler"), row.get("n_steps", 10))
        settings.setdefault(own, []).append((base, 1.0 if base > 0 else None))
        for variant in row.get("ode_variants", []):
            share = variant["pc_success"] / base if base > 0 else None  # nothing to keep a share of
            settings.setdefault((variant["solver"], variant["n_steps"]), []).append((variant["pc_success"], share))
    points = []
    for (solver, n_steps), values in sorted(settings.items(), key=lambda item: (SOLVERS.index(item[0][0]), item[0][1])):
        success, shares = zip(*values)
        min_share = None if None in shares else round(float(min(shares)), 3)
        points.append({"solver": solver, "n_steps": n_steps, "evaluations": n_steps * EVALUATIONS_PER_STEP[solver],
                       "ms_per_chunk": ms.get((solver, n_steps)),
                       "ms_per_chunk_two_threads": ms_two.get((solver, n_steps)), "per_seed": list(success),
                       "mean_pc_success": round(float(np.mean(success)), 1), "min_share_of_own_setting": min_share,
                       "keeps_95": len(values) == len(rows) and min_share is not None and min_share >= KEEP_FRACTION})
    kept = [p for p in points if p["keeps_95"] and p["ms_per_chunk"] is not None]
    cheapest = min(kept, key=lambda p: p["ms_per_chunk"]) if kept else None
    return {"points": points, "cheapest_kept": cheapest}


def print_curve(trainer: str, curve: dict) -> None:
    print(f"  {trainer}: success (mean over seeds) / ms per chunk")
    for p in curve["points"]:
        mark = "  keeps >= 95%" if p["keeps_95"] else ""
        two = p.get("ms_per_chunk_two_threads")
        two_threads = "" if two is None else f" ({two} on two threads)"
        print(f"    {p['solver']:8s} {p['n_steps']:2d} steps ({p['evaluations']:2d} evals): {p['mean_pc_success']:5.1f}% "
              f"{p['per_seed']}  {p['ms_per_chunk']} ms{two_threads}{mark}")
    cheapest = curve["cheapest_kept"]
    if cheapest:
        print(f"    cheapest that keeps >= 95% of the policy's own setting on every seed: {cheapest['solver']} x {cheapest['n_steps']} "
              f"({cheapest['ms_per_chunk']} ms)")


def plot_ode_curves(summary: dict, path: Path, env_id: str) -> None:
    """Success against ms per chunk, one panel per trainer, one line per solver."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trainers = [t for t, s in summary.items() if "ode_curve" in s]
    if not trainers:
        return
    fig, axes = plt.subplots(1, len(trainers), figsize=(3.2 * len(trainers), 3.2), sharey=True, squeeze=False)
    for ax, trainer in zip(axes[0], trainers):
        for solver in SOLVERS:
            points = [p for p in summary[trainer]["ode_curve"]["points"] if p["solver"] == solver and p["ms_per_chunk"]]
            if points:
                ax.plot([p["ms_per_chunk"] for p in points], [p["mean_pc_success"] for p in points], "o-", label=solver)
                for p in points:
                    ax.annotate(str(p["n_steps"]), (p["ms_per_chunk"], p["mean_pc_success"]), fontsize=7,
                                xytext=(3, -8), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_ylim(0, 102)
        ax.set_title(trainer.replace("_trainer", "").replace("_", " "), fontsize=8)
        ax.set_xlabel("ms per chunk (batch 1, 1 thread)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"success % ({env_id})")
    axes[0][0].legend(fontsize=7, title="solver (labels: ODE steps)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def retime(args: argparse.Namespace) -> None:
    """``--retime``: new chunk timings for the kept checkpoints, the ODE curves recomputed from the stored rows."""
    import json

    if args.keep_checkpoints is None:
        raise SystemExit("--retime needs --keep-checkpoints DIR, the directory the run kept its checkpoints in")
    path = RESULTS_DIR / f"{args.name or f'flow_state_{args.env}'}.json"
    figures = json.loads(path.read_text())
    timings = {}
    for trainer, summary in figures["summary"].items():
        first = next(r for r in figures["rows"] if r["trainer"] == trainer and "pc_success" in r)
        steps = tuple(sorted(set(LATENCY_STEPS) | {v["n_steps"] for v in first.get("ode_variants", [])}))
        timings[trainer] = latency(checkpoint_path(args.keep_checkpoints, trainer, first["seed"]), steps)
        if any("ode_variants" in r for r in figures["rows"]):
            rows = [r for r in figures["rows"] if r["trainer"] == trainer and "pc_success" in r]
            summary["ode_curve"] = ode_curve(rows, timings[trainer])
            print_curve(trainer, summary["ode_curve"])
    figures["latency_ms_per_chunk"] = timings
    figures["retimed"] = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_average": os.getloadavg(),
                          "what": "chunk timings re-measured on the kept checkpoints, ODE curves recomputed from the rows"}
    path.write_text(json.dumps(figures, indent=2, default=str))
    plot_ode_curves(figures["summary"], path.with_name(f"{path.stem}_ode_curve.png"), figures["settings"]["env_id"])
    print(f"wrote {path}")


def reevaluate(args: argparse.Namespace) -> None:
    """``--reevaluate SOURCE``: the kept checkpoints of the run that wrote ``SOURCE.json``, evaluated again at each
    inference setting it evaluated, and at the ``--also-ode-steps`` x ``--also-solvers`` settings it did not, on
    ``--eval-episodes`` episodes; its rows' training figures are kept, the success figures replaced and the
    summary (ODE curves included, with the run's chunk timings, or new ones where it timed none) recomputed."""
    import json

    from il_toolkit.evaluation import evaluate_checkpoint

    if args.keep_checkpoints is None or args.name in (None, args.reevaluate) or args.eval_episodes is None:
        raise SystemExit("--reevaluate SOURCE needs --keep-checkpoints DIR (where that run kept its checkpoints), "
                         "--eval-episodes N and a --name other than SOURCE for the new results file")
    figures = json.loads((RESULTS_DIR / f"{args.reevaluate}.json").read_text())
    env_id, seed = figures["settings"]["env_id"], figures["settings"].get("eval_seed", 1_000_000)
    targets = []  # (the row or variant whose scores are replaced, its checkpoint)
    added = []  # (the row's checkpoint, a new ODE variant of it, where that is saved)
    for row in (r for r in figures["rows"] if "pc_success" in r):
        own = checkpoint_path(args.keep_checkpoints, row["trainer"], row["seed"])
        targets.append((row, own))
        evaluated = {(row.get("solver", "euler"), row.get("n_steps", 10))}
        evaluated |= {(v["solver"], v["n_steps"]) for v in row.get("ode_variants", [])}
        for solver in args.also_solvers if args.also_ode_steps else ():
            for n_steps in args.also_ode_steps:
                if (solver, n_steps) not in evaluated:
                    variant = {"solver": solver, "n_steps": n_steps}
                    row.setdefault("ode_variants", []).append(variant)
                    added.append((own, variant, checkpoint_path(args.keep_checkpoints, row["trainer"], row["seed"], variant)))
        targets += [(variant, checkpoint_path(args.keep_checkpoints, row["trainer"], row["seed"], variant))
                    for variant in row.get("ode_variants", []) + row.get("execution_variants", [])]
    for own, variant, path in added:
        if own.is_dir():
            save_variant(own, dict(variant), path)
    missing = [str(path) for _, path in targets if not path.is_dir()]
    if missing:
        raise SystemExit(f"--reevaluate: {len(missing)} of the run's checkpoints are not in {args.keep_checkpoints}: "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    for target, path in targets:
        target.update(scores(evaluate_checkpoint(path, env_id, args.eval_episodes, seed, num_envs=2)))
        print(f"{path.name}: {target['pc_success']:.1f}%", flush=True)
    for trainer, summary in figures["summary"].items():
        done = [r for r in figures["rows"] if r["trainer"] == trainer and "pc_success" in r]
        summary.update(success_summary(done))
        if "ode_curve" in summary or args.also_ode_steps:
            timings = figures.setdefault("latency_ms_per_chunk", {})
            timed = {t["ode_steps"] for t in timings.get(trainer, [])}
            if not set(args.also_ode_steps) <= timed or not timed:  # a step count without a timing is timed anew
                steps = tuple(sorted(set(LATENCY_STEPS) | set(args.also_ode_steps) | timed))
                timings[trainer] = latency(checkpoint_path(args.keep_checkpoints, trainer, done[0]["seed"]), steps)
            summary["ode_curve"] = ode_curve(done, timings[trainer])
            print_curve(trainer, summary["ode_curve"])
    figures["settings"]["eval_episodes"] = args.eval_episodes
    figures["reevaluated_from"] = args.reevaluate
    figures.pop("benchmark", None)
    figures["source_environment"] = figures.pop("environment", None)  # where and with what the checkpoints were trained
    if any("ode_curve" in summary for summary in figures["summary"].values()):
        plot_ode_curves(figures["summary"], RESULTS_DIR / f"{args.name}_ode_curve.png", env_id)
    write_results(args.name, figures)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    if args.retime:
        return retime(args)
    if args.reevaluate:
        return reevaluate(args)
    from il_toolkit.envs import make_env
    from il_toolkit.train.imitation_learning.defaults import (
        DEFAULT_NOISES_PER_WINDOW, DEFAULT_REFLOW_LEARNING_RATE, DEFAULT_REFLOW_STEPS, default_mlp_time_embedding,
        defaults_for)

    args.env_id, default_demos, default_episodes = ENVS[args.env]
    args.demos = args.demos if args.demos is not None else default_demos
    args.eval_episodes = args.eval_episodes if args.eval_episodes is not None else default_episodes
    args.name = args.name or f"flow_state_{args.env}"
    if args.quick:
        args.demos, args.steps, args.eval_episodes, args.seeds = 5, 300, 4, args.seeds[:1]
    env = make_env(args.env_id)
    defaults = defaults_for(env)
    if args.reflow_from is not None:
        defaults.update(steps=DEFAULT_REFLOW_STEPS, learning_rate=DEFAULT_REFLOW_LEARNING_RATE)
    settings = {
        "steps": args.steps if args.steps is not None else defaults["steps"],
        "learning_rate": args.learning_rate if args.learning_rate is not None else defaults["learning_rate"],
        "horizon": args.horizon if args.horizon is not None else defaults["horizon"],
        "n_obs_steps": args.n_obs_steps if args.n_obs_steps is not None else defaults["n_obs_steps"],
    }
    settings["n_action_steps"] = args.n_action_steps if args.n_action_steps is not None else min(
        defaults["n_action_steps"], settings["horizon"] - settings["n_obs_steps"] + 1)
    if args.reflow_from is not None:
        noises = DEFAULT_NOISES_PER_WINDOW if args.reflow_noises is None else args.reflow_noises
        if noises < 1:
            raise SystemExit(f"--reflow-noises must be >= 1, got {noises}")
        settings.update(reflow_from=str(args.reflow_from), reflow_noises=noises,
                        architecture="each reflowed checkpoint's own: the chunk and net settings here do not apply")
        missing = [str(p) for t in args.trainers if not t.endswith("_depth") for s in args.seeds
                   for p in [checkpoint_path(args.reflow_from, t, s)] if not p.is_dir()]
        if missing:
            raise SystemExit(f"--reflow-from: no kept checkpoint {', '.join(missing)} (train with --keep-checkpoints first)")
        if args.keep_checkpoints is not None and args.keep_checkpoints.resolve() == args.reflow_from.resolve():
            raise SystemExit("--keep-checkpoints would overwrite the --reflow-from checkpoints: give another directory")
    elif args.reflow_noises is not None:
        raise SystemExit("--reflow-noises is a setting of --reflow-from")
    if args.reflow_from is None and args.mlp_time_embedding is None:  # as train flow chooses it
        args.mlp_time_embedding = default_mlp_time_embedding(settings["horizon"])
    dataset, demos = expert_demonstrations(args.env, args.demos, env)
    rows = []
    timings: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep_checkpoints or Path(tmp)
        for trainer in args.trainers:
            for seed in args.seeds:
                rows.append(run(trainer, seed, demos, env, args, settings, out))
            first = next((r for r in rows if r["trainer"] == trainer and "pc_success" in r), None)
            if first is not None and (args.latency or args.also_ode_steps):
                steps = tuple(sorted(set(LATENCY_STEPS) | set(args.also_ode_steps)))
                timings[trainer] = latency(checkpoint_path(out, trainer, first["seed"]), steps)
    summary = {}
    for trainer in args.trainers:
        done = [r for r in rows if r["trainer"] == trainer and "pc_success" in r]
        if done:
            summary[trainer] = {**success_summary(done),
                                "mean_train_seconds": round(float(np.mean([r["train_seconds"] for r in done])), 1)}
            print(f"{trainer}: {summary[trainer]['mean_pc_success']:.1f}% over seeds {args.seeds} "
                  f"({summary[trainer]['mean_train_seconds']:.0f} s training each)")
            if args.also_ode_steps:
                summary[trainer]["ode_curve"] = ode_curve(done, timings.get(trainer, []))
                print_curve(trainer, summary[trainer]["ode_curve"])
    figures = {
        "settings": {**settings, "env_id": args.env_id, "demos": args.demos, "dataset": dataset, "batch_size": args.batch_size,
                     "features": "raw state" if args.raw_state else "env's feature pipeline (task frame)",
                     "velocity_net": args.velocity_net, **{name: getattr(args, name) for name in MLP_OPTIONS},
                     **spec_options(args), "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000},
        "summary": summary,
        "rows": rows,
    }
    if timings:
        figures["latency_ms_per_chunk"] = timings
    if args.also_ode_steps:
        plot_ode_curves(summary, RESULTS_DIR / f"{args.name}_ode_curve.png", args.env_id)
    write_results(args.name, figures)


if __name__ == "__main__":
    main()
