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

Also measured (``--latency``): ms per action chunk against ODE steps and solver on the first
trained checkpoint (``flow_step_cost.py`` measures the cost of a training step). Writes
``benchmarks/results/<name>.json`` (default ``flow_state_<env>``).
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

ENVS = {  # env id, demonstrations, evaluation episodes
    "pusht": ("il_toolkit/PushT-v0", 200, 100),
    "aloha_transfer": ("il_toolkit/AlohaTransferCube-v0", 50, 50),
    "aloha_insertion": ("il_toolkit/AlohaInsertion-v0", 50, 50),
}
DATASET = "bench/{env}-expert-{n}-v0"
DEFAULT_TRAINERS = (
    "naive_flow_matching_policy_trainer",
    "vfp_single_expert_trainer",
    "mutual_information_estimator_trainer",
    "cfg_vqvae_flow_matching_trainer_kot",
    "variational_flow_matching_policy_trainer",
    "vfp_single_expert_trainer_depth",
)


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
    parser.add_argument("--raw-state", action="store_true", help="no feature pipeline: the raw board coordinates")
    parser.add_argument("--eval-episodes", type=int, default=None, help="default: PushT 100, ALOHA 50")
    parser.add_argument("--also-execute", nargs="+", type=int, default=[], metavar="N",
                        help="also evaluate each chunked checkpoint executing N actions per chunk (receding horizon)")
    parser.add_argument("--temporal-ensemble", type=float, default=None, metavar="K",
                        help="also evaluate each checkpoint re-planning every step, ACT's temporal ensembling with weight K")
    parser.add_argument("--latency", action="store_true", help="also time chunks against ODE steps and solvers")
    parser.add_argument("--quick", action="store_true", help="20 demos, 300 steps, 10 episodes: a smoke run")
    parser.add_argument("--also-ode-steps", nargs="+", type=int, default=[], metavar="N",
                        help="also evaluate each checkpoint integrating with N Euler steps")
    parser.add_argument("--name", default=None, help="results file name (default flow_state_<env>)")
    return parser.parse_args()


def run(trainer: str, seed: int, demos, env, args: argparse.Namespace, settings: dict, out: Path) -> dict:
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.policies import load
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning.loop import train_flow_policy

    features = None if args.raw_state else default_state_features(env)
    spec_fields = {"horizon": settings["horizon"], "n_obs_steps": settings["n_obs_steps"], "velocity_net": args.velocity_net}
    if args.mlp_width is not None:
        spec_fields["mlp_width"] = args.mlp_width
    if trainer.endswith("_depth"):
        return {"trainer": trainer, "seed": seed, "skipped": "trains on depth images; a state env has none"}
    start = time.perf_counter()
    policy = train_flow_policy(
        trainer, demos, env.observation_space, env.action_space, steps=settings["steps"], batch_size=args.batch_size,
        learning_rate=settings["learning_rate"], seed=seed, spec_fields=spec_fields, features=features,
        policy_options={"n_action_steps": settings["n_action_steps"]},
    )
    train_seconds = time.perf_counter() - start
    path = policy.save(out / f"{trainer}-s{seed}")
    result = evaluate_checkpoint(path, args.env_id, args.eval_episodes, num_envs=2)
    a = result.aggregates
    row = {"trainer": trainer, "seed": seed, "pc_success": a["pc_success"], "avg_max_reward": round(a["avg_max_reward"], 4),
           "train_steps": settings["steps"], "train_seconds": round(train_seconds, 1),
           "steps_per_second": round(settings["steps"] / train_seconds, 1), "eval_seconds": round(result.seconds, 1),
           "parameters": int(sum(p.numel() for p in policy.parameters())), "velocity_net": policy.spec.velocity_net}
    print(f"{trainer} seed {seed}: {a['pc_success']:.0f}% success, avg max reward {a['avg_max_reward']:.3f}, "
          f"{settings['steps']} steps in {train_seconds:.0f} s", flush=True)
    variants = [("n_action_steps", n) for n in args.also_execute if n != settings["n_action_steps"]]
    if args.temporal_ensemble is not None:
        variants.append(("temporal_ensemble_coeff", args.temporal_ensemble))
    variants += [("n_steps", n) for n in args.also_ode_steps]
    for attribute, value in variants:
        variant_policy = load(path)
        setattr(variant_policy, attribute, value)
        variant = evaluate_checkpoint(variant_policy.save(out / f"{trainer}-s{seed}-{attribute}{value}"), args.env_id,
                                      args.eval_episodes, num_envs=2).aggregates
        row.setdefault("execution_variants", []).append(
            {attribute: value, "pc_success": variant["pc_success"], "avg_max_reward": round(variant["avg_max_reward"], 4)})
        print(f"  {attribute}={value}: {variant['pc_success']:.0f}% success", flush=True)
    return row


def latency(path: Path) -> list[dict]:
    """Median ms per chunk (batch 1) for 1, 2, 5, 10 ODE steps and each solver."""
    from il_toolkit.policies import load

    policy = load(path)
    window = {"observation.state": torch.zeros(1, policy.spec.n_obs_steps, policy.spec.state_dim)}
    rows = []
    for solver in ("euler", "midpoint", "rk4"):
        for n_steps in (1, 2, 5, 10):
            times = []
            for _ in range(60):
                start = time.perf_counter()
                policy.predict_chunk(window, n_steps=n_steps, solver=solver)
                times.append(time.perf_counter() - start)
            rows.append({"solver": solver, "ode_steps": n_steps, "ms_per_chunk": round(1000 * float(np.median(times[10:])), 3)})
    return rows


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("MINARI_DATASETS_PATH", str(RESULTS_DIR.parent / ".cache" / "minari"))
    from il_toolkit import collect_dataset, load_demonstrations
    from il_toolkit.envs import make_env
    from il_toolkit.train.imitation_learning.cli import defaults_for

    args.env_id, default_demos, default_episodes = ENVS[args.env]
    args.demos = args.demos if args.demos is not None else default_demos
    args.eval_episodes = args.eval_episodes if args.eval_episodes is not None else default_episodes
    args.name = args.name or f"flow_state_{args.env}"
    if args.quick:
        args.demos, args.steps, args.eval_episodes, args.seeds = 5, 300, 4, args.seeds[:1]
    env = make_env(args.env_id)
    defaults = defaults_for(env)
    settings = {
        "steps": args.steps if args.steps is not None else defaults["steps"],
        "learning_rate": args.learning_rate if args.learning_rate is not None else defaults["learning_rate"],
        "horizon": args.horizon if args.horizon is not None else defaults["horizon"],
        "n_obs_steps": args.n_obs_steps if args.n_obs_steps is not None else defaults["n_obs_steps"],
    }
    settings["n_action_steps"] = args.n_action_steps if args.n_action_steps is not None else min(
        defaults["n_action_steps"], settings["horizon"] - settings["n_obs_steps"] + 1)
    dataset = DATASET.format(env=args.env, n=args.demos)
    collect_dataset(args.env_id, dataset, args.demos, seed=0, num_envs=2, progress=False, if_missing=True)
    demos = load_demonstrations(dataset, env=env)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for trainer in args.trainers:
            for seed in args.seeds:
                rows.append(run(trainer, seed, demos, env, args, settings, Path(tmp)))
        first = next((Path(tmp) / f"{r['trainer']}-s{r['seed']}" for r in rows if "pc_success" in r), None)
        timings = latency(first) if args.latency and first is not None else None
    summary = {}
    for trainer in args.trainers:
        done = [r for r in rows if r["trainer"] == trainer and "pc_success" in r]
        if done:
            summary[trainer] = {"mean_pc_success": round(float(np.mean([r["pc_success"] for r in done])), 1),
                                "per_seed": [r["pc_success"] for r in done],
                                "mean_train_seconds": round(float(np.mean([r["train_seconds"] for r in done])), 1)}
            print(f"{trainer}: {summary[trainer]['mean_pc_success']:.1f}% over seeds {args.seeds} "
                  f"({summary[trainer]['mean_train_seconds']:.0f} s training each)")
    figures = {
        "settings": {**settings, "env_id": args.env_id, "demos": args.demos, "dataset": dataset, "batch_size": args.batch_size,
                     "features": "raw state" if args.raw_state else "env's feature pipeline (task frame)",
                     "velocity_net": args.velocity_net, "eval_episodes": args.eval_episodes, "eval_seed": 1_000_000},
        "summary": summary,
        "rows": rows,
    }
    if args.latency:
        figures["latency_ms_per_chunk"] = timings
    write_results(args.name, figures)


if __name__ == "__main__":
    main()
