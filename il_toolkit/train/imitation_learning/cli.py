"""``il-toolkit train flow``: train any ``TRAINER_REGISTRY`` trainer on a Minari dataset.

    il-toolkit train flow --trainer naive_flow_matching_policy_trainer --dataset pusht/expert-v0 --output_dir ./output/flow

With no other flags the settings suit the env (:func:`defaults_for`): a state env gets the env's
feature pipeline (PushT: the T's task frame), an MLP velocity net and a budget that trains in
about a minute on a 2-core CPU; an image env a transformer over camera tokens and chunks of 16.
With ``--estimate_state``, a camera dataset that records the env's full state trains the policy
on that state and a state estimator in front of it (:mod:`il_toolkit.train.state_estimation`).
A dataset of an env whose instruction names the goal (``il_toolkit/PushTTwoTarget-v0``) trains the
policy on the episodes moved into their goal's frame and an instruction grounder in front of it
(:mod:`il_toolkit.train.instructed`).

A run writes ``config.json``, ``run.json``, ``metrics.jsonl``, ``checkpoint/`` (models and
optimizer state every ``--checkpoint_every`` steps: rerunning the command resumes from it),
``best/`` (the trained policy) and ``eval.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from il_toolkit.cli_flags import non_negative_int, positive_float, positive_int
from il_toolkit.model.flow import SOLVERS
from il_toolkit.model.spec import DEFAULT_SHORTCUT_EMA_DECAY, MLP_TIME_EMBEDDINGS
from il_toolkit.train.imitation_learning.defaults import (  # noqa: F401  (re-exported)
    CHUNK_STEPS, DEFAULT_ESTIMATE_NOISE, DEFAULT_LOCATE_STEPS, DEFAULT_NOISES_PER_WINDOW, DEFAULT_ODE_STEPS,
    DEFAULT_REFLOW_LEARNING_RATE, DEFAULT_REFLOW_STEPS, DEFAULT_SOLVER, IMAGE_DEFAULTS, STATE_DEFAULTS,
    default_mlp_time_embedding, defaults_for)


class _DefaultsOnce(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a flag's help unless the help already says its default or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or isinstance(action.default, bool):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def build_parser(prog: str = "python -m il_toolkit.train.imitation_learning.cli") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=_DefaultsOnce,
        description="Train a flow-matching policy (any of the six trainer families: il-toolkit train flow --list) on "
                    "a Minari dataset, then evaluate it. Unset settings suit the env: state envs see the env's "
                    "features with an MLP velocity net, image envs a transformer over camera tokens.")
    parser.add_argument("--trainer", default=None,
                        help="TRAINER_REGISTRY key (il-toolkit train flow --list shows them; default: "
                             "naive_flow_matching_policy_trainer, or --model_path's own)")
    parser.add_argument("--model_path", help="continue training this saved flow policy (its architecture, features "
                        "and normaliser are kept; fine-tuning on --dataset)")
    parser.add_argument("--reflow", action="store_true",
                        help="with --model_path: reflow it (Liu et al. 2023, Rectified Flow) instead of fine-tuning on "
                             "the dataset's chunks: its own ODE takes --reflow_noises noises per training window to "
                             "chunks, and a copy learns those (noise, chunk) pairs, which straightens its paths so that "
                             "fewer ODE steps (--ode_steps, saved with the result) may stand in for its own; whether "
                             "that pays depends on how faithfully the copy learns the map (ALOHA insertion: README). "
                             "Unset --steps and "
                             f"--learning_rate default to {DEFAULT_REFLOW_STEPS} and {DEFAULT_REFLOW_LEARNING_RATE}")
    parser.add_argument("--reflow_noises", type=positive_int, default=None,
                        help=f"with --reflow: noises (so chunks) per training window (default: {DEFAULT_NOISES_PER_WINDOW})")
    parser.add_argument("--list", action="store_true", help="list the registered trainers and exit")
    parser.add_argument("--dataset", help="Minari dataset id or lerobot/* alias")
    parser.add_argument("--env", help="env id (default: the one the dataset records)")
    parser.add_argument("--steps", type=non_negative_int, default=None, help="gradient steps (default: state envs "
                        f"{STATE_DEFAULTS['steps']}, {CHUNK_STEPS} where the env asks for chunks, image envs "
                        f"{IMAGE_DEFAULTS['steps']}, --reflow {DEFAULT_REFLOW_STEPS})")
    parser.add_argument("--batch_size", type=positive_int, default=256, help="windows per gradient step")
    parser.add_argument("--learning_rate", type=positive_float, default=None, help="peak learning rate, cosine-decayed over "
                        f"the steps (default: state {STATE_DEFAULTS['learning_rate']}, images {IMAGE_DEFAULTS['learning_rate']}, "
                        f"--reflow {DEFAULT_REFLOW_LEARNING_RATE})")
    parser.add_argument("--horizon", type=positive_int, default=None, help="actions predicted per chunk (default: state "
                        f"{STATE_DEFAULTS['horizon']} or the env's action_chunk, ALOHA 16; images {IMAGE_DEFAULTS['horizon']}). "
                        "PushT state: 4 with --n_action_steps 2 succeeded as often as horizon 1 (100%% both, 3 seeds) "
                        "with half the policy calls; 16 needs more steps (one seed executing 1: 92%% at 6,000, 96%% at 24,000)")
    parser.add_argument("--n_obs_steps", type=positive_int, default=None, help="observations per window (default: state "
                        f"{STATE_DEFAULTS['n_obs_steps']}, images {IMAGE_DEFAULTS['n_obs_steps']})")
    parser.add_argument("--n_action_steps", type=positive_int, default=None, help="actions executed per chunk (default: state "
                        f"{STATE_DEFAULTS['n_action_steps']} or half the env's action_chunk, images "
                        f"{IMAGE_DEFAULTS['n_action_steps']})")
    parser.add_argument("--velocity_net", default="auto", choices=("auto", "mlp", "transformer"),
                        help="auto: an MLP velocity net for state inputs, a transformer over tokens for cameras")
    parser.add_argument("--mlp_time_embedding", default=None, choices=MLP_TIME_EMBEDDINGS,
                        help="how the MLP velocity net of a new policy takes the flow time (--model_path keeps its "
                             "own). sinusoids: the time's sinusoidal features go straight into the net (default for "
                             "--horizon 1: PushT training steps ~13%% cheaper, same success); sinusoids_mlp: through "
                             "a small MLP first (default for chunks: without it ALOHA insertion lost 23 and 5 points "
                             "of success at --ode_steps 1 and 2)")
    parser.add_argument("--mlp_expert_width", type=non_negative_int, default=0,
                        help="width of each expert MLP of the variational trainer's mixture (0: the velocity net's "
                             "width / sqrt(experts), so that the mixture's hidden layers cost what one net's do)")
    parser.add_argument("--action_statistics", default="per_dimension", choices=("per_dimension", "per_position"),
                        help="how action chunks are scaled for training: every position alike, or each chunk position by "
                             "its own statistics (relative actions spread wider further ahead: PushT with chunks of 16 "
                             "gained 11-23 points, ALOHA transfer lost 8 on one seed)")
    parser.add_argument("--shortcut_steps", type=int, default=0,
                        help="0: plain flow matching. A power of two M such as 128: train a shortcut model (Frans et al. "
                             "2024, One Step Diffusion via Shortcut Models), which is also told the ODE step size and "
                             "learns large steps from its own pairs of half steps, so that 1 or 2 Euler steps "
                             "(--ode_steps 1) can stand in for 10 where that conditioning learns: on PushT it brought "
                             "one-step chunks a third closer to many-step ones, on ALOHA's chunks of 16 it hardly "
                             "changed them (README; benchmarks/shortcut_chunks.py)")
    parser.add_argument("--shortcut_fraction", type=float, default=0.25,
                        help="with --shortcut_steps: the share of every batch that trains the shortcut's "
                             "self-consistency on targets the model makes itself (the rest trains plain flow "
                             "matching); 0.75 with --shortcut_steps 8 trained a failing policy (0%%) in 40,000 steps on "
                             "ALOHA transfer, and with --shortcut_ema_decay 0.99 one reaching 74%% at ten Euler steps "
                             "(24%% at one)")
    parser.add_argument("--shortcut_ema_decay", type=float, default=DEFAULT_SHORTCUT_EMA_DECAY,
                        help="with --shortcut_steps: 0 (default: %(default)s) makes the self-consistency targets with "
                             "the velocity net itself; a decay such as 0.99 with a moving average of it, which kept a "
                             "large --shortcut_fraction from feeding on the net's latest errors on ALOHA transfer but "
                             "cost one-step success elsewhere (ALOHA insertion: 18%% against 58%%)")
    parser.add_argument("--estimate_state", action="store_true",
                        help="for a camera dataset that records the env's full state (collect does, for PushT and ALOHA "
                             "pixels): train the flow policy on that state and a keypoint CNN that estimates it from "
                             "the cameras; the saved policy acts on the observation alone (cameras and the agent's own "
                             "position: the state supervises training only)")
    parser.add_argument("--estimator_steps", type=non_negative_int, default=3000,
                        help="state estimator steps (batch 64) with --estimate_state (PushT: 3,000 took 6.8 CPU minutes)")
    parser.add_argument("--estimator_stride", type=int, default=4, choices=(2, 4),
                        help="with --estimate_state, the estimator's keypoint maps are at 1/stride of the image: 2 for "
                             "objects only a few pixels across, at about 2.5x the compute")
    parser.add_argument("--recombined_frames", type=int, default=None,
                        help="with --estimate_state on an env that can render a given state (ALOHA): frames pairing one "
                             "recorded state's arms with another's objects, on which the estimator first learns where "
                             "the objects are, so that the arm cannot stand in for them (default 6,000 there; 0: none)")
    parser.add_argument("--locate_steps", type=int, default=DEFAULT_LOCATE_STEPS,
                        help="with recombined frames: the estimator's steps (batch 64) on them alone, the loss on the "
                             "objects' positions, before its --estimator_steps on everything")
    parser.add_argument("--noisy_copies", type=int, default=None,
                        help="with --estimate_state: the flow policy also trains on this many copies of each episode "
                             "whose objects' positions carry an estimate's error (--state_noise), so that it tolerates "
                             "the estimator's (default 2 where the env renders given states; ALOHA transfer from three "
                             "48x64 cameras: 40%% success without, 72%% with; 0: none)")
    parser.add_argument("--state_noise", type=float, nargs=2, default=None, metavar=("OFFSET", "JITTER"),
                        help="standard deviations of the noisy copies' per-episode offset and per-frame jitter, in the "
                             "state's units (ALOHA: metres; default %g %g)" % DEFAULT_ESTIMATE_NOISE)
    parser.add_argument("--grounder_steps", type=non_negative_int, default=400,
                        help="instruction grounder steps (batch 32) for datasets whose instruction names the goal, such "
                             "as il_toolkit/PushTTwoTarget-v0's (400 took 14 CPU seconds)")
    parser.add_argument("--no-task_frame", dest="task_frame", action="store_false",
                        help="see the raw state instead of the env's feature pipeline (default: the env's; PushT: the "
                             "T's task frame)")
    parser.add_argument("--d_model", type=positive_int, default=128, help="token width")
    parser.add_argument("--ode_steps", type=positive_int, default=None,
                        help="ODE steps at inference, saved with the policy (default: 10 for a new policy, "
                             "--model_path's own for one trained further)")
    parser.add_argument("--solver", default=None, choices=SOLVERS,
                        help="ODE solver at inference (default: euler for a new policy, --model_path's own for one "
                             "trained further)")
    parser.add_argument("--validation_split", type=float, default=0.0,
                        help="share of the episodes held out to measure val/loss each epoch (0: none; all train)")
    parser.add_argument("--keep_weights", default="last", choices=("last", "best"),
                        help="the weights kept: the last step's, or the epoch's with the lowest val/loss (train/loss "
                             "without a validation split)")
    parser.add_argument("--checkpoint_every", type=non_negative_int, default=1000, help="steps between resumable checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="training seed (weights, minibatches, noise)")
    parser.add_argument("--eval_episodes", type=non_negative_int, default=50, help="evaluation episodes after training, seeds from 1,000,000 (0: none)")
    parser.add_argument("--output_dir", default="./output/flow", help="where the run, its checkpoint and policy go")
    parser.add_argument("--no_wandb", dest="use_wandb", action="store_false",
                        help="do not log to wandb (default: log to an offline wandb run, no account needed)")
    return parser


def resolve_settings(args: argparse.Namespace, env: Any) -> dict[str, Any]:
    """``args`` with every unset (None) setting replaced by the env's default."""
    settings = {k: v for k, v in vars(args).items() if k != "list"}
    for key, value in defaults_for(env).items():
        if settings.get(key) is None:
            settings[key] = value
    if settings.get("mlp_time_embedding") is None:
        settings["mlp_time_embedding"] = default_mlp_time_embedding(settings["horizon"])
    return settings


def train(args: argparse.Namespace) -> dict[str, Any]:
    """The undecorated function under the CLI."""
    from il_toolkit.evaluation import evaluate_and_report
    from il_toolkit.model.spec import shortcut_settings_problem
    from il_toolkit.train.datasets.lerobot_dataset import resolve_dataset
    from il_toolkit.train.datasets.minari_io import load_demonstrations
    from il_toolkit.train.il import common
    from il_toolkit.policies.flow_policy import default_state_features
    from il_toolkit.train.imitation_learning.loop import train_flow_policy
    from il_toolkit.train.imitation_learning.reflow import reflow_policy, reflow_problem
    from il_toolkit.train.imitation_learning.training_state import saved_training_step
    from il_toolkit.train.logging import MetricLogger

    if args.dataset is None:
        raise SystemExit("give --dataset (a Minari id such as pusht/expert-v0, or lerobot/pusht)")
    if not 0.0 <= args.validation_split < 1.0:
        raise SystemExit(f"--validation_split must be in [0, 1), got {args.validation_split}")
    problem = shortcut_settings_problem(args.shortcut_steps, args.shortcut_fraction, args.shortcut_ema_decay)
    if problem:
        raise SystemExit(f"--{problem}")
    problem = inference_and_reflow_problem(args)
    if problem:
        raise SystemExit(problem)
    rng = common.seed_everything(args.seed)
    dataset = resolve_dataset(args.dataset)
    camera_env = env = common.env_for_dataset(dataset, args.env)
    demos = load_demonstrations(dataset, env=env)
    states, instructed = None, None
    if getattr(camera_env.unwrapped, "goal_frame", None) is not None:
        env, instructed = goal_env_and_demonstrations(dataset, camera_env, demos, args)
        demos = instructed.in_goal_frame
    elif args.estimate_state:
        env, states = state_env_and_states(dataset, camera_env)
    elif suggest_estimate_state(dataset, camera_env):
        print("tip: this camera dataset records the env's full state; --estimate_state trains on it and a state "
              "estimator in front (PushT from pixels: 99% success after 7.6 CPU minutes)", file=sys.stderr)
    episodes = list(zip(demos, states)) if states is not None else demos  # states stay with their episode
    train_episodes, val_episodes = common.split_episodes(episodes, args.validation_split, rng)
    train_demos, val_demos = train_episodes, val_episodes
    if states is not None:  # the flow policy learns from the recorded states, and noisy copies where asked
        from il_toolkit.train.state_estimation import state_trajectories

        noise = state_noise_options(camera_env, args)
        train_demos = state_trajectories(*zip(*train_episodes), **noise)
        val_demos = state_trajectories(*zip(*val_episodes)) if val_episodes else []
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.reflow:
        args.steps = DEFAULT_REFLOW_STEPS if args.steps is None else args.steps
        args.learning_rate = DEFAULT_REFLOW_LEARNING_RATE if args.learning_rate is None else args.learning_rate
    settings = resolve_settings(args, env)
    if states is not None:  # what the state policy was trained on, defaults resolved
        resolved = noise.get("noise")
        settings["noisy_copies"] = resolved.copies if resolved else 0
        settings["state_noise"] = [resolved.offset, resolved.jitter] if resolved else None
    start = starting_policy(args.model_path)
    trainer = args.trainer or (start.trainer_key if start is not None else "naive_flow_matching_policy_trainer")
    settings["trainer"] = trainer
    settings["ode_steps"] = args.ode_steps or (start.n_steps if start is not None else DEFAULT_ODE_STEPS)
    settings["solver"] = args.solver or (start.solver if start is not None else DEFAULT_SOLVER)
    if args.reflow:
        settings["reflow_noises"] = args.reflow_noises or DEFAULT_NOISES_PER_WINDOW
        problem = (f"--reflow keeps the policy's own trainer ({start.trainer_key}); drop --trainer {trainer}"
                   if trainer != start.trainer_key else reflow_problem(start))
        if problem:
            raise SystemExit(problem)
    (out / "config.json").write_text(json.dumps(settings, indent=2))
    run_env = camera_env if instructed is not None else env  # the env the saved policy acts in
    (out / "run.json").write_text(json.dumps({"algorithm": "flow", "env_id": common.env_id_of(run_env), "dataset": dataset,
                                              "n_demo_episodes": len(demos)}, indent=2))
    logger = MetricLogger(out, use_wandb=args.use_wandb, run_name=f"flow-{trainer}-s{args.seed}", config=settings,
                          console=False)
    logger.continue_from(saved_training_step(out / "checkpoint") or 0)  # an earlier run's later steps are logged again
    steps = settings["steps"]
    every = max(1, steps // 20)
    new_model = {} if start is not None else dict(
        spec_fields={"horizon": settings["horizon"], "n_obs_steps": settings["n_obs_steps"], "d_model": args.d_model,
                     "velocity_net": args.velocity_net, "mlp_time_embedding": settings["mlp_time_embedding"],
                     "mlp_expert_width": args.mlp_expert_width,
                     "action_statistics": args.action_statistics,
                     "shortcut_steps": args.shortcut_steps, "shortcut_fraction": args.shortcut_fraction,
                     "shortcut_ema_decay": args.shortcut_ema_decay},
        policy_options={"n_action_steps": settings["n_action_steps"], "n_steps": settings["ode_steps"],
                        "solver": settings["solver"]},
        features=default_state_features(env) if args.task_frame else None)
    fit_options = dict(
        steps=steps, batch_size=args.batch_size, learning_rate=settings["learning_rate"], seed=args.seed,
        log=lambda metrics, step: logger.log(metrics, step) if step % every == 0 or step == steps - 1 else None,
        checkpoint_dir=out / "checkpoint", checkpoint_every=args.checkpoint_every, resume=True, progress=True,
        val_trajectories=val_demos or None, keep=args.keep_weights,
        on_epoch_end=lambda epoch, metrics: logger.log({**metrics, "epoch": epoch}, int(metrics["train/steps"])),
    )
    try:
        if args.reflow:
            policy = reflow_policy(start, train_demos, noises_per_window=settings["reflow_noises"],
                                   observation_space=env.observation_space, action_space=env.action_space, **fit_options)
        else:
            policy = train_flow_policy(
                trainer, train_demos, env.observation_space, instructed.action_space if instructed is not None else
                env.action_space, policy=start, **new_model, **fit_options)
    except KeyboardInterrupt:
        print(f"interrupted: the training state is saved in {out / 'checkpoint'}; run the same command again to "
              "continue from it", file=sys.stderr)
        raise
    finally:
        logger.close()
    if start is not None:  # a saved policy keeps its inference settings unless asked to change them
        policy.n_steps, policy.solver = settings["ode_steps"], settings["solver"]
    result: dict[str, Any] = {}
    if states is not None:
        result["state_policy_episodes"] = len(train_demos)  # the noisy copies included
        policy, result["state_estimator"] = fit_estimator(policy, camera_env, train_episodes, val_episodes, args, out)
    if instructed is not None:
        policy, result["grounder"] = fit_grounder_in_front(policy, instructed, camera_env, args, out)
    common.mark_trained_in(policy, run_env)
    path = policy.save(out / "best")
    aggregates = (evaluate_and_report(policy, camera_env, args.eval_episodes, out / "eval.json", progress=True)
                  if args.eval_episodes > 0 else None)
    return {"policy_path": str(path), "eval": aggregates, **result}


def inference_and_reflow_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the inference settings and the reflow flags, or ``None``."""
    if args.ode_steps is not None and args.ode_steps < 1:
        return f"--ode_steps must be >= 1, got {args.ode_steps}"
    if not args.reflow:
        return "--reflow_noises is a setting of --reflow" if args.reflow_noises is not None else None
    if args.model_path is None:
        return "--reflow straightens a trained flow policy's ODE: give the policy's directory with --model_path"
    if args.reflow_noises is not None and args.reflow_noises < 1:
        return f"--reflow_noises must be >= 1, got {args.reflow_noises}"
    if Path(args.output_dir).resolve() in (Path(args.model_path).resolve(), *Path(args.model_path).resolve().parents):
        return (f"--model_path {args.model_path} lies in --output_dir {args.output_dir}, whose checkpoint a reflow run "
                "writes and resumes from: give the reflowed policy another --output_dir")
    return None


def state_env_and_states(dataset: str, camera_env: Any) -> tuple[Any, list[Any]]:
    """``--estimate_state``: the env's ``state`` observation type (whose feature pipeline and
    defaults the flow policy gets) and the states recorded beside the dataset's observations."""
    from il_toolkit.envs import make_env
    from il_toolkit.train.datasets.minari_io import load_states
    from il_toolkit.train.state_estimation import camera_keys

    spec_id = camera_env.spec.id if camera_env.spec is not None else None
    if not camera_keys(camera_env.observation_space):
        raise SystemExit("--estimate_state is for camera datasets; this dataset's observations have no camera image "
                         "(a state dataset's observations are the state itself): drop --estimate_state")
    if not hasattr(camera_env.unwrapped, "state_vector") or spec_id is None:
        raise SystemExit("--estimate_state needs an env with a full state (state_vector()), such as PushT or ALOHA")
    return make_env(spec_id, obs_type="state"), load_states(dataset, env_id=spec_id)


def goal_env_and_demonstrations(dataset: str, env: Any, trajectories: list, args: argparse.Namespace) -> tuple[Any, Any]:
    """A dataset of an env whose instruction names the goal: the env whose one goal is the goal
    frame's reference (its feature pipeline and defaults suit the moved episodes) and the
    demonstrations with their instructions, goals and moved copies."""
    from il_toolkit.envs import make_env
    from il_toolkit.features.goals import get_goal_frame
    from il_toolkit.train.instructed import instructed_demonstrations

    if args.estimate_state:
        raise SystemExit("--estimate_state is for camera datasets; this dataset's env observes its state and names "
                         "the goal in the instruction: drop --estimate_state")
    demos = instructed_demonstrations(dataset, env, trajectories)
    return make_env(get_goal_frame(demos.goal_frame).reference_env), demos


def fit_grounder_in_front(state_policy: Any, demos: Any, env: Any, args: argparse.Namespace,
                          out: Path) -> tuple[Any, dict[str, Any]]:
    """The instruction grounder, fitted on every episode's instruction, in front of the trained
    state policy; its report goes to ``grounder.json``."""
    from il_toolkit.train.instructed import train_instructed_policy

    policy, report = train_instructed_policy(demos, state_policy, env.observation_space, env.action_space,
                                             steps=args.grounder_steps, seed=args.seed)
    (out / "grounder.json").write_text(json.dumps(report, indent=2))
    return policy, report


def state_noise_options(camera_env: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``--noisy_copies`` and ``--state_noise`` as :func:`state_trajectories`' ``noise``."""
    from il_toolkit.train.state_estimation import noise_options

    try:
        return noise_options(camera_env, args.noisy_copies, args.state_noise, seed=args.seed)
    except ValueError as error:
        raise SystemExit(f"--noisy_copies / --state_noise: {error}") from None


def suggest_estimate_state(dataset: str, env: Any) -> bool:
    """A camera dataset that records the env's full state, trained without ``--estimate_state``."""
    from il_toolkit.train.datasets.minari_io import records_states
    from il_toolkit.train.state_estimation import camera_keys

    return bool(camera_keys(env.observation_space)) and records_states(dataset)


def fit_estimator(state_policy: Any, camera_env: Any, train_episodes: list, val_episodes: list,
                  args: argparse.Namespace, out: Path) -> tuple[Any, dict[str, Any]]:
    """``--estimate_state``: a state estimator on the training episodes' cameras in front of the
    trained state policy; its held-out errors (with ``--validation_split``) go to ``estimator.json``."""
    from il_toolkit.train.state_estimation import locating_options, train_estimated_state_policy

    validation = tuple(zip(*val_episodes)) if val_episodes else None  # (demos, states)
    demos, states = zip(*train_episodes)
    try:
        locating = locating_options(camera_env, states, args.recombined_frames, seed=args.seed)
    except ValueError as error:
        raise SystemExit(f"--recombined_frames: {error}") from None
    policy, report = train_estimated_state_policy(
        demos, states, state_policy, camera_env.observation_space, camera_env.action_space,
        validation=validation, steps=args.estimator_steps, seed=args.seed, stride=args.estimator_stride,
        locate_steps=args.locate_steps, **locating)
    (out / "estimator.json").write_text(json.dumps(report, indent=2))
    return policy, report


def starting_policy(model_path: str | None) -> Any:
    """The flow policy ``--model_path`` names (None without one); anything else is refused."""
    if model_path is None:
        return None
    from il_toolkit.policies import load
    from il_toolkit.policies.flow_policy import FlowMatchingPolicy

    policy = load(model_path)
    if not isinstance(policy, FlowMatchingPolicy):
        raise SystemExit(f"{model_path} holds a {type(policy).__name__}; train flow continues flow-matching policies "
                         "only (train bc/dagger/gail take the others)")
    return policy


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    from il_toolkit.cli_flags import harmonise

    args = harmonise(build_parser(prog or "python -m il_toolkit.train.imitation_learning.cli")).parse_args(argv)
    if args.list:
        from il_toolkit.train.imitation_learning import TRAINER_REGISTRY

        print("\n".join(TRAINER_REGISTRY.keys()))
        return 0
    print(json.dumps(train(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
