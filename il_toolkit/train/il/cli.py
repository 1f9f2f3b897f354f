"""The command lines of behavioural cloning, DAgger and GAIL, apart from the algorithms.

``python -m il_toolkit.train.il.behavioral_cloning`` (``.dagger``, ``.gail``) and
``il-toolkit train bc|dagger|gail`` run :func:`main_bc` (:func:`main_dagger`, :func:`main_gail`):
parse the flags into an :class:`ILConfig`, route a VLA request (``--dataset lerobot/pusht``, a VLA
``--model_path``) to :func:`run_vla`, otherwise build the env and the algorithm and train. The
algorithm classes hold no argparse and no routing; this module imports them, never the reverse.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from il_toolkit.cli_flags import harmonise
from il_toolkit.config.training_config import (ACTIVATIONS, BETA_SCHEDULES, CHUNK_LABELS, DAGGER_VARIANTS, KEEP_WEIGHTS,
                                               LR_SCHEDULES, ON_STUCK, POLICY_TYPES, ILConfig)
from il_toolkit.model.vla import VLAModel
from il_toolkit.policies import load
from il_toolkit.train.datasets.lerobot_dataset import ChunkedEpisodeDataset, create_lerobot_dataloader
from il_toolkit.train.datasets.multitask import MultiTaskDataset
from il_toolkit.train.il import common
from il_toolkit.train.il.behavioral_cloning import BehavioralCloning
from il_toolkit.train.il.dagger import DAgger, VLADAgger
from il_toolkit.train.il.gail import GAIL
from il_toolkit.train.il.vla import VLABehavioralCloning, VLAGAIL, estimated_state_fields


# -- flags shared by the three command lines ---------------------------------------------------
# -- command line ----------------------------------------------------------------------
_HELP = {
    "bc_epochs": "training epochs (per DAgger iteration for DAgger)",
    "bc_validation_split": "fraction of demonstration episodes held out for val/loss",
    "learning_rate": "optimizer learning rate",
    "batch_size": "minibatch size",
    "weight_decay": "AdamW weight decay",
    "seed": "training seed (also picks the demonstration starts)",
    "num_expert_episodes": "expert episodes to collect when no --dataset is given",
    "demo_top_percentile": "keep only demonstrations at or above this return percentile (e.g. 70)",
    "dagger_iterations": "number of DAgger iterations",
    "dagger_episodes_per_iter": "episodes collected per DAgger iteration",
    "dagger_beta_schedule": f"beta decay: {', '.join(BETA_SCHEDULES)}",
    "dagger_initial_beta": "starting probability of acting with the expert",
    "gail_disc_hidden_dim": "discriminator hidden layer size",
    "gail_disc_updates": "discriminator updates per policy update",
    "gail_disc_lr": "discriminator learning rate",
    "gail_reward_scale": "multiplier for the GAIL reward",
    "gail_disc_noise": "std of Gaussian noise added to discriminator inputs",
    "total_timesteps": "environment steps for GAIL/PPO",
    "gail_bc_warm_start_epochs": "BC epochs on the demonstrations before GAIL starts (warm start); skipped "
                                 "when GAIL starts from --model_path, which is the warm start then",
    "gail_demo_batch_size": "expert (and generator) samples per discriminator update",
    "gail_n_envs": "parallel envs for the PPO generator (ppo_n_steps is split across them)",
    "ppo_epochs": "PPO epochs per update",
    "ppo_clip_range": "PPO clip range",
    "ppo_gae_lambda": "GAE lambda",
    "ppo_n_steps": "environment steps per PPO update (all envs together)",
    "ppo_gamma": "discount factor",
    "eval_episodes": "evaluation episodes after training",
    "policy_type": "sb3: SB3 actor-critic via imitation's BC; mlp: toolkit MLPPolicy; flow: a flow-matching policy "
                   "(MLP velocity net on the env's features; continuous actions); auto: sb3 for discrete actions, "
                   "else mlp",
    "relative_actions": "mlp: regress actions as offsets from the observation entries they target (PushT's agent "
                        "position, ALOHA's joint positions)",
    "drop_velocity_obs": "mlp: leave out the observation entries the env names as copyable velocities (ALOHA's arm "
                         "joint velocities), against the copycat problem",
    "task_frame": "mlp: see the state and express the actions in the env's task frame (PushT: the pusher and the pose "
                  "error in the block's frame, targets relative to the pusher); "
                  "replaces relative_actions where the env has a frame; GAIL: the generator and the discriminator "
                  "work in that frame too",
    "policy_mixture_components": "mlp, continuous actions: > 1 makes the head a mixture of this many Gaussians that acts "
                                 "with its heaviest component, so it picks one of two expert choices instead of their "
                                 "average (PushT, BC-200 in the block frame, one seed: 72 vs 39 percent success)",
    "policy_hidden_sizes": "mlp/sb3: hidden layer widths, e.g. 512 512 512 (default 256 256 for mlp, 64 64 for sb3)",
    "policy_activation": "mlp: hidden-layer activation",
    "lr_schedule": "mlp: learning rate over each fit (each DAgger round): constant, cosine, or onecycle (warm-up, "
                   "then cosine decay)",
    "keep_weights": "which weights each fit keeps: best (lowest validation loss), last, or auto (best for BC; last "
                    "for DAgger rounds, whose validation episodes hold learner-visited states, and for flow learners)",
    "dagger_warm_start": "continue each round from the last round's weights (imitation's DAgger) instead of training "
                         "a freshly initialised learner on the aggregate (Ross et al.), which generalises better",
    "dagger_stuck_steps": "> 0: a rollout is stuck once each observation for this many steps repeated one of the 20 "
                          "before it (the learner stands still or cycles, and would label the same states to the end); "
                          "0: off",
    "dagger_on_stuck": "what a stuck rollout does: end (the episode stops there) or expert (the expert acts for the "
                       "rest of it, so its labels show the way out)",
    "dagger_label_budget": "> 0: stop once the aggregate (the initial dataset included) holds this many expert labels, "
                           "cutting the rollout in progress (to compare with BC at equal labels); 0: no limit",
    "dagger_chunk_labels": "plain DAgger with a chunked learner: expert_chunks (where the learner plans, the expert "
                           "acts for a chunk in a branch of the simulation that is then undone; that chunk is the "
                           "target and each of its actions a label), visited (the expert's labels of the states the "
                           "learner goes on to visit), or auto (expert_chunks where the env can save and restore its "
                           "simulation, as ALOHA's can, and the expert is memoryless; else visited). A chunk costs "
                           "action_chunk_size + executed - 1 labels per plan (--temporal_aggregation plans every step)",
    "dagger_variant": "dagger: the beta mixture acts and the expert labels every visited state (Ross et al. 2011); "
                      "hg_dagger: the learner acts and the expert (a person at the controls, or a model of one) takes "
                      "over where it strays, labelling only those states (Kelly et al. 2019); ensemble_dagger: K "
                      "learners, the expert acts where they disagree or the state is far from the training data "
                      "(Menda et al. 2019); thrifty_dagger: the expert acts where the ensemble disagrees or a learned "
                      "failure risk is high (Hoque et al. 2021)",
    "dagger_ensemble_size": "ensemble_dagger, thrifty_dagger: learners in the ensemble (each round trains them all)",
    "dagger_target_query_rate": "ensemble_dagger, thrifty_dagger: each round's thresholds send this share of the states "
                                "the learner visited in the last round to the expert",
    "dagger_intervention_threshold": "hg_dagger's simulated person: takes over once the learner's action is farther "
                                     "than this from the expert's (RMS over action dimensions, in half-ranges of the "
                                     "action space; 0.1 on PushT is about 26 px)",
    "dagger_reaction_steps": "hg_dagger's simulated person: steps in a row the learner must stray before they take over",
    "dagger_settle_steps": "hg_dagger's simulated person: steps they keep control at least before handing back",
    "action_chunk_size": "> 1: train a flow-matching policy that predicts this many actions per observation (ACT-style "
                         "chunking; continuous actions); DAgger retrains it afresh each round (--dagger_warm_start: "
                         "continues it)",
    "temporal_aggregation": "chunked policies: re-plan every step and average the overlapping chunks (ACT's temporal "
                            "ensembling) instead of executing each chunk in full",
    "output_dir": "where the checkpoint, config, metrics and evaluation are written",
}


CHOICES = {"dagger_beta_schedule": BETA_SCHEDULES, "dagger_variant": DAGGER_VARIANTS, "dagger_on_stuck": ON_STUCK,
           "dagger_chunk_labels": CHUNK_LABELS, "policy_type": POLICY_TYPES,
           "lr_schedule": LR_SCHEDULES, "policy_activation": ACTIVATIONS, "keep_weights": KEEP_WEIGHTS}


def _build_parser(prog: str, description: str, preset: ILConfig, field_names: Sequence[str]) -> argparse.ArgumentParser:
    """A parser with the ILConfig flags (``--bc_epochs`` ...) for ``field_names``, defaults from ``preset``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    source = parser.add_argument_group("data and environment")
    source.add_argument("--env", help="gymnasium env id, e.g. CartPole-v1 (see `il-toolkit envs`)")
    source.add_argument("--dataset", help=(
        "Minari dataset id to train from instead of a live expert; lerobot/* ids (lerobot/pusht, ...) train a VLA on "
        "our local expert data, and comma-separated datasets (VLA BC) one multi-task VLA conditioned on each "
        "dataset's instruction"))
    source.add_argument("--expert", default="default", help=(
        "expert name for live demonstrations (see `il-toolkit experts`) or a saved policy directory (any toolkit "
        "checkpoint, e.g. your RL policy: SB3Policy.from_model(model).save(dir)); DAgger also takes 'human': you, at a window "
        "(with --dagger_variant hg_dagger you take over by holding the mouse button or an arrow key)"))
    source.add_argument("--model_path", help="start from this saved policy directory")
    source.add_argument("--overwrite", action="store_true", help="replace an earlier run in --output_dir (without it "
                        "an earlier run there is refused; DAgger resumes its own)")
    types = {f.name: f.type for f in fields(ILConfig)}
    hyper = parser.add_argument_group("configuration (ILConfig fields)")
    for name in field_names:
        default = getattr(preset, name)
        kind = {"int": int, "float": float, "str": str, "float | None": float}.get(str(types[name]), str)
        kwargs: dict[str, Any] = {"type": kind, "default": default, "help": _HELP.get(name, name)}
        if name in CHOICES:
            kwargs["choices"] = CHOICES[name]
        if name == "policy_hidden_sizes":
            kwargs.update(type=int, nargs="+")
        if str(types[name]) == "bool":
            kwargs = {"action": argparse.BooleanOptionalAction, "default": default, "help": _HELP.get(name, name)}
        hyper.add_argument(f"--{name}", **kwargs)
    logging = parser.add_argument_group("logging")
    logging.set_defaults(use_wandb=preset.use_wandb)
    on = "on" if preset.use_wandb else "off"  # the two flags share one setting: its default is said once
    logging.add_argument("--use_wandb", dest="use_wandb", action="store_true", default=argparse.SUPPRESS,
                         help=f"log to wandb, offline unless WANDB_MODE is set (default: {on})")
    logging.add_argument("--no_wandb", dest="use_wandb", action="store_false", default=argparse.SUPPRESS,
                         help="do not log to wandb")
    logging.add_argument("--no_progress", action="store_true", help="hide progress bars")
    setup = parser.add_argument_group("configuration files")
    setup.add_argument("--config", metavar="FILE", help="read the configuration from FILE (the config.json a run "
                       "writes, or --print_config's output); flags given beside it override its values")
    setup.add_argument("--print_config", action="store_true", help="print the whole configuration as JSON and exit")
    return parser


def config_from_args(args: argparse.Namespace, preset: ILConfig, only: frozenset[str] | None = None) -> ILConfig:
    """``preset`` with the ILConfig fields of ``args`` (all of them, or those in ``only``: the flags
    given on the command line, so that a ``--config`` file's values are not reset to the defaults)."""
    names = {f.name for f in fields(ILConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names and (only is None or k in only)}
    return preset.replace(**overrides)


def load_config_file(path: str) -> ILConfig:
    """The ILConfig in a JSON file (the ``config.json`` every run writes), with an error that says
    what is wrong with it."""
    from il_toolkit.config.training_config import ConfigError

    try:
        return ILConfig.load(path)
    except FileNotFoundError:
        raise ConfigError(f"no config file {path!r}: give the config.json a run wrote (or --print_config's output)")
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path!r} is not JSON ({error}); give the config.json a run wrote") from None


def config_file_fields(path: str) -> frozenset[str]:
    """The fields a ``--config`` file sets (they count as given, like flags)."""
    try:
        return frozenset(json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return frozenset()  # load_config_file reports the problem


class _Outcome:
    exit_code = 0


@contextlib.contextmanager
def reporting_user_errors(prog: str) -> Iterator[_Outcome]:
    """Report a user's mistake (an unknown env, a bad setting, a wrong checkpoint, a busy run
    directory...) as one line ``PROG: error: ...`` and exit code 2 instead of a traceback, and Ctrl-C
    as ``PROG: interrupted`` and exit code 130 (the run has said what it saved); every command line
    of the toolkit (``il-toolkit``, ``python -m il_toolkit.train.il.*``) goes through it. A bug in
    the toolkit still shows its traceback."""
    from il_toolkit.cli_flags import CommandLineError
    from il_toolkit.config.training_config import ConfigError
    from il_toolkit.envs import UnknownEnvError
    from il_toolkit.experts import ExpertEnvMismatchError
    from il_toolkit.features.state import FeatureMismatchError
    from il_toolkit.policies import CheckpointError, SpaceMismatchError
    from il_toolkit.registry import UnknownKeyError
    from il_toolkit.train.datasets.minari_io import DatasetError
    from il_toolkit.train.il.common import ResumeMismatchError, RunBusyError, RunExistsError
    from il_toolkit.train.il.interactive import ExpertFailure

    outcome = _Outcome()
    try:
        yield outcome
    except (UnknownEnvError, UnknownKeyError, CheckpointError, SpaceMismatchError, DatasetError, ConfigError,
            ResumeMismatchError, RunBusyError, RunExistsError, FeatureMismatchError, ExpertFailure,
            ExpertEnvMismatchError, CommandLineError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        outcome.exit_code = 2
    except KeyboardInterrupt:  # what was saved has been said where it was saved; no traceback
        print(f"{prog}: interrupted", file=sys.stderr)
        outcome.exit_code = 130


def _run_cli(algorithm: str, parser: argparse.ArgumentParser, preset: ILConfig, train: Callable[..., dict[str, Any]],
             argv: Sequence[str] | None, extra_flags: Sequence[str] = ()) -> int:
    """Parse ``argv`` with a :func:`_build_parser` parser and print the run's results as JSON; the CLIs'
    ``main``. A VLA request (the user guide's ``--dataset lerobot/pusht``, ``--model_path ./pretrained_vla``)
    goes to :func:`run_vla` as ``algorithm``; anything else to ``train`` on ``preset`` with the flags
    given (and the ``extra_flags`` a script adds)."""
    args = harmonise(parser).parse_args(argv)
    given = given_flags(sys.argv[1:] if argv is None else argv, parser)
    common_flags = dict(env_id=args.env, dataset=args.dataset, model_path=args.model_path, use_wandb=args.use_wandb,
                        progress=not args.no_progress)
    if algorithm == "dagger":
        extra_flags, args.given_flags = (*extra_flags, "given_flags"), given | (config_file_fields(args.config)
                                                                                 if args.config else frozenset())
    with reporting_user_errors(parser.prog) as outcome:
        config = config_from_args(args, load_config_file(args.config) if args.config else preset,
                                  only=given if args.config else None)
        if args.print_config:
            env = _env_to_print_for(args) if algorithm == "dagger" and not args.model_path else None
            if env is not None:  # as train_dagger will resolve it
                config = interactive_defaults(env, config, args.given_flags)
            print(json.dumps(config.to_dict(), indent=2, sort_keys=True))
            return 0
        estimate_state = getattr(args, "estimate_state", False)  # (VLA BC only)
        if estimate_state or is_vla_request(args.dataset, args.model_path):
            results = run_vla(algorithm, config, **common_flags, **({"estimate_state": True} if estimate_state else {}))
        else:
            results = train(config, expert=args.expert, overwrite=args.overwrite, **common_flags,
                            **{name: getattr(args, name) for name in extra_flags})
        print(json.dumps(results, indent=2, default=str))
    return outcome.exit_code


# -- behavioural cloning -------------------------------------------------------------------
BC_FIELDS = (
    "bc_epochs", "batch_size", "learning_rate", "weight_decay", "bc_validation_split",
    "num_expert_episodes", "demo_top_percentile", "policy_type", "policy_hidden_sizes", "policy_activation",
    "relative_actions", "drop_velocity_obs", "task_frame", "policy_mixture_components", "lr_schedule",
    "keep_weights", "action_chunk_size", "temporal_aggregation", "seed", "eval_episodes", "output_dir",
)


def build_bc_parser(prog: str = "python -m il_toolkit.train.il.behavioral_cloning"):
    parser = _build_parser(
        prog,
        "Behavioural cloning: learn a policy from expert demonstrations, either collected "
        "live from the env's registered expert (--env) or read from a Minari dataset (--dataset).",
        ILConfig.behavioral_cloning(use_wandb=True),
        BC_FIELDS,
    )
    parser.add_argument("--estimate_state", action="store_true", help=(
        "VLA BC on camera demonstrations that record the simulator's state (lerobot/pusht, ...): the cameras are read "
        "by a keypoint state estimator learned from that state in the same loop, and the actions predicted from the "
        "estimate through the env's state features, with the env's chunk size (PushT 1, ALOHA 16); acting reads the "
        "cameras and the robot's own state alone"))
    return parser


def train_bc(config: ILConfig, *, env_id: str | None, dataset: str | None, expert: str, model_path: str | None,
             use_wandb: bool, progress: bool, overwrite: bool = False) -> dict[str, Any]:
    """The undecorated function under the CLI: everything a non-VLA run does, from parsed arguments."""
    env, dataset = common.env_and_dataset(env_id, dataset, progress=progress)
    env_id = common.env_id_of(env)
    policy = load(model_path) if model_path is not None else None
    trainer = BehavioralCloning(env, config, use_wandb=use_wandb, policy=policy, progress=progress, overwrite=overwrite)
    expert_policy = None
    if dataset is None and expert != "default":
        from il_toolkit.experts import make_expert

        expert_policy = make_expert(env_id, env=env, name=expert)
    return trainer.train(expert_policy, dataset=dataset)


def main_bc(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_bc_parser(prog or "python -m il_toolkit.train.il.behavioral_cloning")
    return _run_cli("bc", parser, ILConfig.behavioral_cloning(), train_bc, argv)


# -- DAgger --------------------------------------------------------------------------------
DAGGER_FIELDS = (
    "dagger_variant", "dagger_iterations", "dagger_episodes_per_iter", "dagger_beta_schedule", "dagger_initial_beta",
    "dagger_warm_start", "dagger_stuck_steps", "dagger_on_stuck", "dagger_label_budget", "dagger_chunk_labels",
    "dagger_ensemble_size",
    "dagger_target_query_rate", "dagger_intervention_threshold", "dagger_reaction_steps", "dagger_settle_steps",
    "bc_epochs", "batch_size", "learning_rate", "weight_decay", "bc_validation_split", "policy_type",
    "policy_hidden_sizes", "policy_activation", "relative_actions", "drop_velocity_obs", "task_frame",
    "policy_mixture_components", "lr_schedule", "keep_weights", "action_chunk_size", "temporal_aggregation", "seed",
    "eval_episodes", "output_dir",
)


def build_dagger_parser(prog: str = "python -m il_toolkit.train.il.dagger"):
    return _build_parser(
        prog,
        "DAgger and its interactive variants (--dagger_variant): roll out the learner with the expert at hand, "
        "aggregate the expert's labels and retrain, round after round. Plain DAgger (Ross et al. 2011) labels every "
        "visited state; HG-DAgger, EnsembleDAgger and ThriftyDAgger ask the expert only where a gate says so. "
        "--dataset gives an initial dataset D0. Rerun the same command to resume; with another "
        "--dagger_iterations the run stops there or goes on for more rounds (not with plain DAgger's linear beta).",
        ILConfig.dagger(use_wandb=True),
        DAGGER_FIELDS,
    )


def given_flags(argv: Sequence[str], parser: argparse.ArgumentParser) -> frozenset[str]:
    """The destinations of the options given on a command line (``--no_wandb`` -> ``use_wandb``, an
    abbreviation -> its option, either spelling)."""
    names = set()
    for token in argv:
        if token.startswith("--"):
            action = _option_action(parser, token.split("=", 1)[0])
            if action is not None:
                names.add(action.dest)
    return frozenset(names)


def _option_action(parser: argparse.ArgumentParser, option: str) -> argparse.Action | None:
    """The action ``option`` selects in ``parser``: an exact spelling, else an unambiguous prefix."""
    actions = parser._option_string_actions
    if option in actions:
        return actions[option]
    matches = {id(a): a for name, a in actions.items() if name.startswith(option)}
    return next(iter(matches.values())) if len(matches) == 1 else None


# Settings the gated DAgger variants use where a flag is not given, by the kind of env (interactive_defaults).
GATED_DEFAULTS = {
    # continuous actions from a state vector (PushT): a flow-matching learner on the env's features, 150 passes per
    # fit; rounds of 8 episodes (benchmarks/interactive_labels.py)
    "state": dict(policy_type="flow", bc_epochs=150, batch_size=256, learning_rate=1e-3, bc_validation_split=0.0,
                  dagger_episodes_per_iter=8),
    # an env that declares action chunks (ALOHA): the MLP learner that reached 94.7% with DAgger on transfer
    # (benchmarks/bc_dagger.py), 50 epochs a round, rounds of 10 episodes
    "chunked": dict(policy_type="mlp", bc_epochs=50, learning_rate=1e-3, dagger_episodes_per_iter=10),
    # discrete actions (CartPole): SB3's actor-critic, 10 epochs a round at lr 1e-3, rounds of 5 episodes
    "discrete": dict(bc_epochs=10, learning_rate=1e-3, dagger_episodes_per_iter=5),
}
LEARNER_FIELDS = frozenset({"policy_type", "action_chunk_size"})  # the flags that choose the learner itself
# Where an env's own measurements chose otherwise, its learner and settings replace its kind's (all of them, unless
# the command line names the learner: --policy_type or --action_chunk_size).
GATED_ENV_DEFAULTS = {
    # ALOHA insertion: a flow-matching learner over chunks of 8 actions, 600 passes per fit, each round continued from
    # the last one's weights, rounds of 40 episodes (BC with it 81% from 50 demonstrations; HG-DAgger from 30, 3 seeds:
    # 85% at 15.9k labels; the MLP was never measured there; benchmarks/interactive_labels.py --learner flow_chunks).
    # The ensemble variants train 5 such learners a round.
    "il_toolkit/AlohaInsertion-v0": dict(policy_type="flow", action_chunk_size=8, bc_epochs=600, batch_size=256,
                                         learning_rate=1e-3, bc_validation_split=0.0, dagger_warm_start=True,
                                         dagger_episodes_per_iter=40),
}


def _env_to_print_for(args: argparse.Namespace) -> Any:
    """The env a DAgger run would use, for ``--print_config``: ``--env``'s, or the env a local
    ``--dataset`` records (a dataset not collected yet is not collected for printing: None)."""
    from il_toolkit.train.datasets.minari_io import dataset_exists

    if args.dataset is not None:
        return common.env_for_dataset(args.dataset, args.env) if dataset_exists(args.dataset) else None
    if args.env is not None:
        from il_toolkit.envs import make_env

        return make_env(args.env)
    return None


def interactive_defaults(env: Any, config: ILConfig, given: frozenset[str]) -> ILConfig:
    """``config`` with :data:`GATED_ENV_DEFAULTS` for ``env``, else :data:`GATED_DEFAULTS` for its kind, in
    every field not in ``given`` (the flags on the command line), for the gated variants (``hg_dagger``,
    ``ensemble_dagger``, ``thrifty_dagger``); plain DAgger keeps its documented defaults (``ILConfig.dagger()``)."""
    import gymnasium as gym

    if config.dagger_variant == "dagger":
        return config
    if isinstance(env.action_space, gym.spaces.Discrete):
        kind = "discrete"
    elif int(getattr(env.unwrapped, "action_chunk", 1)) > 1:
        kind = "chunked"
    else:
        kind = "state"
    own = GATED_ENV_DEFAULTS.get(common.env_id_of(env))
    defaults = own if own is not None and not given & LEARNER_FIELDS else GATED_DEFAULTS[kind]
    return config.replace(**{k: v for k, v in defaults.items() if k not in given})


def train_dagger(config: ILConfig, *, env_id: str | None, dataset: str | None, expert: str, model_path: str | None,
                 use_wandb: bool, progress: bool, overwrite: bool = False,
                 given_flags: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The undecorated function under the CLI: everything a non-VLA run does, from parsed arguments;
    ``given_flags``: the ILConfig fields set on the command line (the rest may take the env's defaults)."""
    from il_toolkit.experts import make_expert

    if env_id is None and dataset is None and model_path is not None:
        env_id = _env_of_model(model_path)
    env, dataset = common.env_and_dataset(env_id, dataset, progress=progress)
    env_id = common.env_id_of(env)
    if model_path is None:
        config = interactive_defaults(env, config, given_flags)
    if expert == "human":  # a person at the window labels (DAgger) or takes over (HG-DAgger)
        from il_toolkit.envs import make_env
        from il_toolkit.teleop.human_expert import HumanExpert

        kwargs = dict(getattr(env.spec, "kwargs", None) or {})  # obs_type etc. of the env the dataset asked for
        env = make_env(env_id, **{**kwargs, "render_mode": "rgb_array"})
        expert_policy = HumanExpert(env)
    else:
        expert_policy = make_expert(env_id, env=env, name=None if expert == "default" else expert)
    policy = load(model_path) if model_path is not None else None
    trainer = DAgger(env, expert_policy, config, use_wandb=use_wandb, policy=policy, progress=progress,
                     overwrite=overwrite)
    return trainer.train(initial_dataset=dataset)


def _recorded_runs(model_path: str) -> Iterator[dict[str, Any]]:
    """The ``run.json`` of the run that saved ``model_path`` (beside it, then inside it), as found."""
    for candidate in (Path(model_path).parent / "run.json", Path(model_path) / "run.json"):
        if candidate.is_file():
            yield json.loads(candidate.read_text())


def _env_of_model(model_path: str) -> str:
    env_id = next((run["env_id"] for run in _recorded_runs(model_path) if run.get("env_id")), None)
    if env_id is None:
        raise SystemExit(f"cannot tell which env {model_path} was trained on; pass --env")
    return env_id


def main_dagger(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_dagger_parser(prog or "python -m il_toolkit.train.il.dagger")
    return _run_cli("dagger", parser, ILConfig.dagger(), train_dagger, argv)


# -- GAIL ----------------------------------------------------------------------------------
GAIL_FIELDS = (
    "num_expert_episodes", "total_timesteps", "gail_disc_hidden_dim", "gail_disc_updates", "gail_disc_lr",
    "gail_reward_scale", "gail_disc_noise", "gail_bc_warm_start_epochs", "gail_demo_batch_size", "gail_n_envs",
    "task_frame", "learning_rate", "batch_size", "ppo_epochs", "ppo_clip_range", "ppo_gae_lambda", "ppo_n_steps", "ppo_gamma",
    "demo_top_percentile", "seed", "eval_episodes", "output_dir",
)


def build_gail_parser(prog: str = "python -m il_toolkit.train.il.gail"):
    parser = _build_parser(
        prog,
        "GAIL (Ho and Ermon 2016): a discriminator learns to tell expert from policy behaviour and PPO maximises its "
        "reward. Demonstrations come from the env's registered expert (--env) or a Minari dataset (--dataset); "
        "CartPole-v1 trains in its fixed-horizon variant and is evaluated in CartPole-v1.",
        ILConfig.gail(use_wandb=True),
        GAIL_FIELDS,
    )
    parser.add_argument("--eval_every_rounds", type=int, default=0,
                        help="evaluate every N rounds during training and keep the best as best/ (0: never)")
    return parser


def train_gail(config: ILConfig, *, env_id: str | None, dataset: str | None, expert: str, model_path: str | None,
               use_wandb: bool, progress: bool, overwrite: bool = False, eval_every_rounds: int = 0) -> dict[str, Any]:
    """The undecorated function under the CLI: everything a non-VLA run does, from parsed arguments."""
    from il_toolkit.envs import make_env

    if env_id is None:
        if dataset is None:
            raise SystemExit("give --env ENV_ID (demonstrations from its expert) or --dataset DATASET_ID")
        from il_toolkit.train.datasets.minari_io import dataset_metadata, open_dataset

        env_id = dataset_metadata(open_dataset(dataset)).get("il_toolkit_env_id")
        if env_id is None:
            raise SystemExit(f"dataset {dataset!r} does not record its env id; pass --env")
    env = make_env(env_id)
    policy = load(model_path) if model_path is not None else None
    trainer = GAIL(env, config, use_wandb=use_wandb, policy=policy, progress=progress, overwrite=overwrite)
    return trainer.train(dataset=dataset, eval_every_rounds=eval_every_rounds,
                         expert_name=None if expert == "default" else expert)


def main_gail(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = build_gail_parser(prog or "python -m il_toolkit.train.il.gail")
    return _run_cli("gail", parser, ILConfig.gail(), train_gail, argv, extra_flags=("eval_every_rounds",))


# -- VLA requests (the user guide's --dataset lerobot/pusht, --model_path ./pretrained_vla) ----------------
def is_vla_request(dataset: str | None, model_path: str | None) -> bool:
    """Whether a BC/DAgger/GAIL command line asks for a VLA: ``--model_path`` holds a VLA
    checkpoint, or ``--dataset`` is a LeRobot id (``lerobot/pusht``, ...) or several
    comma-separated datasets (a multi-task VLA)."""
    if model_path is not None:
        from il_toolkit.policies import load_config

        return load_config(model_path).get("kind") == "vla"
    names = [name.strip() for name in (dataset or "").split(",") if name.strip()]
    return len(names) > 1 or any(name.startswith("lerobot/") for name in names)


def vla_state_features(dataset_ids: Sequence[str], env_id: str | None) -> dict[str, Any] | None:
    """The feature pipeline a new single-task VLA reads its state through: the one every learner in the
    dataset's env uses (``default_state_features``); None for several tasks (see
    :func:`vla_task_options`) or an env whose observation has no state."""
    from il_toolkit.policies.flow_policy import default_state_features

    if len(dataset_ids) != 1:
        return None
    features = default_state_features(common.env_for_dataset(dataset_ids[0], env_id))
    return None if features is None else features.to_json()


def vla_task_options(train_set: Any, dataset_ids: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """For a multi-task VLA, each task's pipeline (its dataset's env's ``default_state_features``, in
    that task's slots); None for one task."""
    from il_toolkit.policies.flow_policy import default_state_features

    if len(dataset_ids) == 1:
        return None
    options: dict[str, dict[str, Any]] = {}
    for task, dataset_id in zip(train_set.tasks(), dataset_ids):
        features = default_state_features(common.env_for_dataset(dataset_id))
        options[task] = {"features": None if features is None else features.to_json()}
    return options


def estimating_vla_fields(dataset_ids: Sequence[str], env_id: str | None) -> dict[str, Any]:
    """``VLAModel.for_dataset`` fields of a new VLA that reads its cameras through a state estimator
    (``--estimate_state``) in the env the one dataset was recorded in (:func:`estimated_state_fields`)."""
    if len(dataset_ids) != 1:
        raise SystemExit("--estimate_state trains a single-task VLA: give one --dataset")
    camera_env = common.env_for_dataset(dataset_ids[0], env_id)
    try:
        return estimated_state_fields(common.env_id_of(camera_env))
    finally:
        camera_env.close()


def recorded_env(dataset: str | None) -> tuple[str | None, dict[str, Any]]:
    """The env id and keywords (``obs_type``, cameras) one local Minari dataset was recorded with
    (None and {} for none, several datasets or one not collected yet)."""
    from il_toolkit.train.datasets.minari_io import dataset_exists, dataset_metadata, open_dataset, writer_lock

    dataset = (dataset or "").strip()
    if not dataset or "," in dataset or not dataset_exists(dataset):
        return None, {}
    with writer_lock(dataset, wait=True):  # a collect rewrites metadata.json in place
        meta = dataset_metadata(open_dataset(dataset))
    return meta.get("il_toolkit_env_id") or None, dict(meta.get("il_toolkit_env_kwargs") or {})


def _previous_run(model_path: str | None) -> dict[str, Any]:
    return next(_recorded_runs(model_path), {}) if model_path is not None else {}


def chunked_splits(dataset_ids: Sequence[str], chunk_size: int, val_fraction: float, seed: int,
                   environment_state: bool = False) -> tuple[ChunkedEpisodeDataset, ChunkedEpisodeDataset | None]:
    """Train and validation sets (validation ``None`` when ``val_fraction`` is 0) of one Minari
    dataset, or, for several (one per task), :class:`MultiTaskDataset` s over them."""
    def split(dataset_id: str, part: str) -> ChunkedEpisodeDataset:
        return ChunkedEpisodeDataset(dataset_id, part, chunk_size, val_fraction=val_fraction, seed=seed,
                                     environment_state=environment_state)

    train = [split(d, "train" if val_fraction > 0 else "all") for d in dataset_ids]
    val = [split(d, "val") for d in dataset_ids] if val_fraction > 0 else None
    if len(dataset_ids) == 1:
        return train[0], (val[0] if val else None)
    return MultiTaskDataset(train), (MultiTaskDataset(val) if val else None)


def run_vla(algorithm: str, config: ILConfig, *, env_id: str | None = None, dataset: str | None = None,
            model_path: str | None = None, use_wandb: bool = False, progress: bool = True,
            chunk_size: int = 10, env_kwargs: dict[str, Any] | None = None,
            estimate_state: bool = False) -> dict[str, Any]:
    """What ``behavioral_cloning`` / ``dagger`` / ``gail`` run for a VLA (``algorithm`` = "bc",
    "dagger", "gail"), with the user guide's flags: ``--dataset lerobot/pusht`` (mapped to our local
    data; for BC, comma-separated datasets train one multi-task model, conditioned on each
    dataset's instruction), ``--model_path DIR`` (chaining: the env, its kwargs and the dataset are read from the
    ``run.json`` of the run that wrote DIR), ``--env`` (``env_kwargs`` for ``make_env``). A new
    model is sized from the dataset; with ``estimate_state`` it reads the cameras through a state
    estimator (:func:`estimating_vla_fields`)."""
    from il_toolkit.envs import canonical_env_id
    from il_toolkit.train.datasets.lerobot_dataset import LEROBOT_ALIASES, resolve_dataset

    previous = _previous_run(model_path)
    dataset = dataset or previous.get("dataset")
    source = LEROBOT_ALIASES.get(dataset) if dataset else None
    recorded_id, recorded_kwargs = (source.env_id, source.env_kwargs) if source else recorded_env(dataset)
    env_id = env_id or previous.get("env_id") or recorded_id
    if env_kwargs is None:
        same_env = recorded_id is not None and env_id is not None and canonical_env_id(env_id) == canonical_env_id(recorded_id)
        env_kwargs = dict(previous.get("env_kwargs") or (recorded_kwargs if same_env else {}) or {})
    model = VLAModel.load(model_path) if model_path is not None else None
    if algorithm == "bc":
        if dataset is None:
            raise SystemExit("VLA BC needs --dataset (e.g. lerobot/pusht)")
        dataset_ids = [resolve_dataset(name.strip(), progress=progress) for name in dataset.split(",") if name.strip()]
        recorded = model is not None and (model.network.estimator is not None or model.network.goals is not None)
        estimated = model.network.estimator is not None if model is not None else estimate_state
        if estimate_state and not estimated:
            raise SystemExit(f"--estimate_state: the VLA at {model_path} reads its cameras as tokens and has no state "
                             "estimator; train a new one (leave out --model_path) or drop --estimate_state")
        fields = estimating_vla_fields(dataset_ids, env_id) if estimated and model is None else {}
        chunk = model.network.config.chunk_size if model is not None else fields.get("chunk_size", chunk_size)
        train_set, val_set = chunked_splits(dataset_ids, chunk, config.bc_validation_split, config.seed,
                                            estimated or recorded)
        model = model if model is not None else VLAModel.for_dataset(
            train_set, seed=config.seed, **({"features": vla_state_features(dataset_ids, env_id),
                                              "task_options": vla_task_options(train_set, dataset_ids)} | fields))
        trainer = VLABehavioralCloning(model, config, use_wandb=use_wandb, dataset_name=dataset, progress=progress)
        loader = create_lerobot_dataloader(train_set, batch_size=config.batch_size, seed=config.seed)
        val_loader = create_lerobot_dataloader(val_set, batch_size=config.batch_size) if val_set is not None else None
        return trainer.train(loader, val_loader, evaluate_env=env_id, env_kwargs=env_kwargs,
                             run_info={"env_id": env_id, "env_kwargs": env_kwargs})
    if model is None or env_id is None:
        raise SystemExit(f"VLA {algorithm} needs --model_path of a trained VLA (e.g. ./output/vla_bc/best) "
                         "whose run recorded its env, or --env")
    if algorithm == "dagger":
        trainer = VLADAgger(env_id, model, config=config, use_wandb=use_wandb, env_kwargs=env_kwargs,
                            dataset_name=dataset, progress=progress)
        return trainer.train()
    if algorithm == "gail":
        if dataset is None:
            raise SystemExit("VLA GAIL needs expert demonstrations: pass --dataset (e.g. lerobot/pusht)")
        expert = ChunkedEpisodeDataset(resolve_dataset(dataset, progress=progress), "all", model.network.config.chunk_size)
        trainer = VLAGAIL(env_id, model, config, use_wandb=use_wandb, env_kwargs=env_kwargs, dataset_name=dataset,
                          progress=progress)
        return trainer.train(expert)
    raise ValueError(f"algorithm must be 'bc', 'dagger' or 'gail', got {algorithm!r}")
