"""The ``il-toolkit`` command: envs, experts, collect, train, eval, datasets, teleop.

Run ``il-toolkit COMMAND --help`` for each command's flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from il_toolkit.cli_flags import CommandLineError, non_negative_int, positive_int

TRAIN_METHODS = {  # method -> what it is, for `il-toolkit train --help`
    "bc": "behavioural cloning: supervised learning from demonstrations (a dataset or the env's expert)",
    "dagger": "DAgger and its interactive variants (HG-DAgger, EnsembleDAgger, ThriftyDAgger): the expert labels "
              "where the learner goes",
    "flow": "a flow-matching policy (six trainer families) on a Minari dataset",
    "gail": "GAIL: a discriminator's reward for a PPO generator, from demonstrations",
}
ODE_SOLVERS = ("euler", "midpoint", "rk4")  # il_toolkit.model.flow.SOLVERS, named here so that --help imports no torch
TRAIN_COMMANDS = {  # method -> "module:function" running its command line
    "bc": "il_toolkit.train.il.cli:main_bc",
    "dagger": "il_toolkit.train.il.cli:main_dagger",
    "gail": "il_toolkit.train.il.cli:main_gail",
    "flow": "il_toolkit.train.imitation_learning.cli:main",
}


def _cmd_envs(args: argparse.Namespace) -> int:
    from il_toolkit.envs import ENVIRONMENTS, make_env
    from il_toolkit.experts import DEFAULT_EXPERTS
    from il_toolkit.policies.spaces import describe

    for entry in ENVIRONMENTS:
        print(f"{entry.id}  (max {entry.max_episode_steps} steps; expert: {DEFAULT_EXPERTS.get(entry.id, '-')})")
        if entry.description:
            print(f"    {entry.description}")
        for obs_type in entry.obs_types:
            kwargs = {"obs_type": obs_type} if len(entry.obs_types) > 1 else {}
            try:
                env = make_env(entry.id, **kwargs)
                spaces = f"obs {describe(env.observation_space)}; action {describe(env.action_space)}"
                env.close()
            except Exception as exc:  # one broken simulator must not hide the others
                spaces = f"unavailable: {type(exc).__name__}: {exc}"
            label = f"obs_type={obs_type}: " if len(entry.obs_types) > 1 else ""
            print(f"    {label}{spaces}")
    return 0


def _cmd_experts(args: argparse.Namespace) -> int:
    from il_toolkit.experts import EXPERT_REGISTRY

    for name in EXPERT_REGISTRY.keys():
        meta = EXPERT_REGISTRY.metadata(name)
        print(f"{name}: {', '.join(meta['env_ids'])}")
        if meta.get("description"):
            print(f"    {meta['description']}")
    return 0


def _env_kwargs(pairs: Sequence[str]) -> dict:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandLineError(f"--env-kwarg expects KEY=VALUE, got {pair!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def _cmd_collect(args: argparse.Namespace) -> int:
    from il_toolkit.train.datasets.collect import collect_dataset

    if sum((args.overwrite, args.append, args.if_missing)) > 1:
        raise CommandLineError("collect: choose one of --overwrite, --append and --if-missing")
    report = collect_dataset(
        args.env, args.dataset_id, args.episodes, expert=args.expert, seed=args.seed,
        overwrite=args.overwrite, append=args.append, num_envs=args.num_envs,
        only_successful=args.only_successful, top_percentile=args.top_percentile,
        env_kwargs=_env_kwargs(args.env_kwarg), progress=not args.no_progress, if_missing=args.if_missing,
    )
    if report.reused:
        print(f"{report.dataset_id} is already complete ({report.n_episodes} episodes, {report.n_steps} steps of "
              f"{report.env_id} by expert {report.expert}) at {report.path}; nothing collected")
        return 0
    resumed = f" (resumed after {report.resumed_from} episodes)" if report.resumed_from else ""
    print(
        f"wrote {report.n_episodes} episodes ({report.n_steps} new steps, mean return {report.mean_return:.2f}) "
        f"of {report.env_id} by expert {report.expert} to {report.dataset_id} at {report.path} "
        f"in {report.seconds:.1f} s, {report.steps_per_second:.0f} steps/s{resumed}"
    )
    if report.dropped:
        print(f"dropped {len(report.dropped)} episodes: {report.dropped}")
    return 0


def _cmd_convert_lerobot(args: argparse.Namespace) -> int:
    from il_toolkit.train.datasets.lerobot_convert import convert_lerobot

    report = convert_lerobot(args.root, args.dataset_id, env_id=args.env, env_kwargs=_env_kwargs(args.env_kwarg),
                             overwrite=args.overwrite)
    print(f"converted {report['episodes']} episodes ({report['steps']} steps) into {report['dataset_id']}; "
          f"instructions: {report['instructions']}")
    return 0


def _dataset_line(dataset_id: str, meta: dict) -> str:
    """``il-toolkit datasets``' line for one dataset: what it holds, and whether its episode data
    cannot be read (corrupt) or its collection was cut short (incomplete), with the fix."""
    from il_toolkit.train.datasets.minari_io import episode_data_problem

    problem = episode_data_problem(dataset_id, meta)
    if problem is not None:
        return (f"{dataset_id}: corrupt, its episode data cannot be read ({type(problem).__name__}: {problem}); "
                "collect it again with --overwrite")
    line = (f"{dataset_id}: {meta.get('total_episodes')} episodes, {meta.get('total_steps')} steps, "
            f"env {meta.get('il_toolkit_env_id', '?')}, expert {meta.get('il_toolkit_expert', '?')}")
    if not bool(meta.get("il_toolkit_complete", True)):
        line += (" (incomplete: its collection was cut short or is still running; rerun the collect (or teleop) "
                 "command that wrote it to finish it)")
    return line


def _cmd_datasets(args: argparse.Namespace) -> int:
    import minari

    from il_toolkit.train.datasets.minari_io import datasets_root

    import warnings

    root = datasets_root()
    with warnings.catch_warnings():  # Minari warns about (and skips) unreadable ones: they are listed below
        warnings.simplefilter("ignore")
        found = minari.list_local_datasets() if root.exists() else {}
    unreadable = sorted(str(d.parent.relative_to(root)) for d in root.rglob("data") if d.is_dir()
                        and str(d.parent.relative_to(root)) not in found) if root.exists() else []
    if not found and not unreadable:
        print(f"no datasets under {root}")
    for dataset_id, meta in sorted(found.items()):
        print(_dataset_line(dataset_id, meta))
    for dataset_id in unreadable:
        print(f"{dataset_id}: unreadable (its metadata is damaged: rerun the collect command that wrote it to recover "
              "it, or collect it again with --overwrite)")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from il_toolkit.evaluation import evaluate_checkpoint
    from il_toolkit.experts import DEFAULT_EXPERTS
    from il_toolkit.envs import canonical_env_id

    if args.output and Path(args.output).is_dir():
        raise CommandLineError(f"eval: --output {args.output} is a directory; give a file name such as "
                               f"{Path(args.output) / 'eval.json'}")
    beyond = [i for i in args.video_episodes if i >= args.episodes] if args.video_dir else []
    if beyond:
        raise CommandLineError(f"eval: --video-episodes {beyond[0]} is beyond the {args.episodes} episodes evaluated "
                               f"(indices 0 to {args.episodes - 1}); raise --episodes or record an earlier episode")
    normalize = args.normalize if args.normalize is not None else canonical_env_id(args.env) in DEFAULT_EXPERTS
    result = evaluate_checkpoint(
        args.policy, args.env, n_episodes=args.episodes, seed=args.seed, num_envs=args.num_envs,
        env_kwargs=_env_kwargs(args.env_kwarg), progress=not args.no_progress, normalize=normalize,
        video_dir=args.video_dir, video_episodes=args.video_episodes, ode_steps=args.ode_steps, solver=args.solver,
    )
    if args.output:
        result.save(args.output)
    print(result.summary() + _ode_note(args))
    if args.video_dir:
        videos = sorted(Path(args.video_dir).glob("episode_seed*.mp4"))
        print(f"videos: {len(videos)} in {Path(args.video_dir).resolve()}" + (f" ({videos[0].name}, ...)" if videos else ""))
    if args.output:
        print(f"results: {Path(args.output).resolve()}")
    print(json.dumps(result.aggregates, indent=2))
    return 0


def _ode_note(args: argparse.Namespace) -> str:
    """The inference settings ``eval`` changed on a flow-matching policy, for its summary line ("" if none)."""
    steps = f"{args.ode_steps} ODE step{'' if args.ode_steps == 1 else 's'}" if args.ode_steps else ""
    given = ", ".join(setting for setting in (steps, f"solver {args.solver}" if args.solver else "") if setting)
    return f" [flow policy: {given}]" if given else ""


def _cmd_teleop(args: argparse.Namespace) -> int:
    from il_toolkit.teleop import TeleopError, run_teleop

    if args.overwrite and args.append:
        raise CommandLineError("teleop: choose one of --overwrite and --append")
    if args.intervene != (args.policy is not None):
        raise CommandLineError("teleop: --intervene and --policy PATH go together (the policy acts, you take over)")
    try:
        report = run_teleop(
            args.env, args.dataset_id, args.episodes, intervene=args.intervene, policy=args.policy, fps=args.fps,
            seed=args.seed, overwrite=args.overwrite, append=args.append, env_kwargs=_env_kwargs(args.env_kwarg),
            window_size=args.window_size,
        )
    except TeleopError as exc:
        raise CommandLineError(f"teleop: {exc}") from exc
    where = f"to {report.dataset_id} at {report.path}" if report.path else "(nothing recorded, no dataset written)"
    print(f"recorded {report.n_episodes} episodes ({report.n_steps} steps, {report.human_steps} by you) of "
          f"{report.env_id} {where}")
    for episode in report.discarded:
        print(f"discarded episode seed {episode['seed']} after {episode['steps']} steps: {episode['reason']}")
    return 0


def episode_indices(text: str) -> list[int]:
    """An argparse type: comma-separated episode indices, each 0 or more (``0,3,7``; empty: none)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated episode indices such as 0,3,7, got {text!r}") from None
    negative = [value for value in values if value < 0]
    if negative:
        raise argparse.ArgumentTypeError(f"episode indices are 0 or more, got {negative[0]}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="il-toolkit",
        description="Interactive imitation learning on Gymnasium: collect demonstrations (from experts or a person "
        "at the controls), train BC, DAgger, GAIL and flow-matching policies, evaluate and benchmark them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the toolkit's environments with their spaces")
    p.set_defaults(func=_cmd_envs)

    p = sub.add_parser("experts", help="list the scripted experts and the envs they serve")
    p.set_defaults(func=_cmd_experts)

    p = sub.add_parser("collect", help="roll out an expert and write a Minari dataset",
                       description="Roll out an expert and write a Minari dataset. Each finished episode is written at "
                       "once; after a crash or Ctrl-C, rerun the same command to continue where it stopped.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", required=True, help="env id, e.g. CartPole-v1 or il_toolkit/PushT-v0")
    p.add_argument("--expert", default="default", help="expert name (`il-toolkit experts`) or a saved policy directory "
                   "(any toolkit checkpoint, e.g. your RL policy: SB3Policy.from_model(model).save(dir)); default: the "
                   "env's")
    p.add_argument("--episodes", type=positive_int, required=True, help="number of episodes")
    p.add_argument("--dataset-id", required=True, help="Minari id NAMESPACE/NAME-vN, e.g. cartpole/lqr-v0")
    p.add_argument("--seed", type=non_negative_int, default=0, help="episode i is reset with seed SEED+i")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.add_argument("--append", action="store_true", help="add EPISODES more episodes to an existing dataset")
    p.add_argument("--if-missing", action="store_true",
                   help="collect only if the dataset is missing (or finish one cut short); one that another request "
                        "wrote (another env, expert, seed, filter or number of episodes) is an error; wait while another "
                        "process writes it, so jobs started side by side collect it once")
    p.add_argument("--num-envs", type=positive_int, default=1, help="worker processes rolling out episodes in parallel")
    p.add_argument("--only-successful", action="store_true",
                   help="keep successful episodes only (more seeds are tried until EPISODES succeed)")
    p.add_argument("--top-percentile", type=float, metavar="P",
                   help="keep only episodes at or above the P-th return percentile (e.g. 70)")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword for the env constructor, e.g. obs_type=pixels (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("convert-lerobot", help="convert a LeRobot-format dataset on disk into a Minari dataset",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("root", help="the LeRobot dataset directory (holds meta/info.json and data/)")
    p.add_argument("--dataset-id", required=True, help="Minari id to write, e.g. pusht/lerobot-v0")
    p.add_argument("--env", help="env id the data fits, e.g. il_toolkit/PushT-v0 (checked, and recorded for training)")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
                   help="env constructor keyword, e.g. obs_type=pixels_agent_pos")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.set_defaults(func=_cmd_convert_lerobot)

    p = sub.add_parser("datasets", help="list local Minari datasets")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("train", help="train a policy: il-toolkit train METHOD [flags] (METHOD --help for flags)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a policy. Methods (il-toolkit train METHOD --help lists each one's flags):\n" +
                       "\n".join(f"  {name:<7} {text}" for name, text in TRAIN_METHODS.items()))
    p.add_argument("method", choices=sorted(TRAIN_COMMANDS), help="training method (see above)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the method's own flags")
    p.set_defaults(func=None)

    p = sub.add_parser("bench", help="benchmark suites and leaderboards (same as il-bench; bench --help)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="il-bench arguments, e.g. run quick")
    p.set_defaults(func=None)

    p = sub.add_parser("eval", help="evaluate a saved policy",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--policy", required=True, help="policy checkpoint directory")
    p.add_argument("--env", required=True, help="env id")
    p.add_argument("--episodes", type=positive_int, default=50, help="evaluation episodes")
    p.add_argument("--seed", type=non_negative_int, default=1_000_000, help="episode i is reset with seed SEED+i")
    p.add_argument("--num-envs", type=positive_int, default=1, help="env processes sharing the episodes (same seeds, same records)")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="env constructor keyword")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="add the normalised score (expert = 1, random = 0 on the same seeds); default: when the env has an expert")
    p.add_argument("--video-dir", help="write MP4s of the episodes listed in --video-episodes here")
    p.add_argument("--video-episodes", type=episode_indices, default="0", metavar="I,J,...",
                   help="comma-separated episode indices to record")
    p.add_argument("--ode-steps", type=positive_int, metavar="N",
                   help="ODE steps of a flow-matching policy at inference, instead of the ones saved with it")
    p.add_argument("--solver", choices=ODE_SOLVERS,
                   help="ODE solver of a flow-matching policy at inference, instead of the one saved with it")
    p.add_argument("--output", help="write per-episode records and aggregates to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("teleop", help="drive an env yourself (mouse: PushT, arrow keys: CartPole) and record to Minari",
                       description="Open a window and drive the env: PushT follows the mouse, CartPole the left/right "
                       "arrows (no key: alternating pushes). Every finished episode is recorded; closing the window "
                       "discards the episode in progress. --intervene: the policy acts and you take over while the "
                       "mouse button (PushT) or an arrow key (CartPole) is held; who acted is stored per step in "
                       "infos['human_acted'].", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", required=True, help="env id, e.g. il_toolkit/PushT-v0 or CartPole-v1")
    p.add_argument("--dataset-id", required=True, help="Minari id NAMESPACE/NAME-vN, e.g. pusht/human-v0")
    p.add_argument("--episodes", type=positive_int, default=10, help="episodes to record")
    p.add_argument("--intervene", action="store_true", help="a learned policy acts; hold the control to take over")
    p.add_argument("--policy", help="policy checkpoint directory (with --intervene)")
    p.add_argument("--fps", type=float, default=10.0, help="env steps per second")
    p.add_argument("--seed", type=non_negative_int, default=0, help="episode i is reset with seed SEED+i")
    p.add_argument("--window-size", type=int, default=512, help="the window's longer side in pixels")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset with this id")
    p.add_argument("--append", action="store_true", help="add episodes to an existing teleop dataset")
    p.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE", help="env constructor keyword")
    p.set_defaults(func=_cmd_teleop)
    for action in sub._choices_actions:  # every subcommand's --help opens with what it does
        command = sub.choices[action.dest]
        command.description = command.description or (action.help[0].upper() + action.help[1:] + ".")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import importlib

    from il_toolkit.cli_flags import harmonise
    from il_toolkit.train.il.cli import reporting_user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after it is il-bench's, --help included
        from il_toolkit.bench.cli import main as bench_main

        return bench_main(argv[1:], prog="il-toolkit bench")
    args = harmonise(build_parser()).parse_args(argv)
    with reporting_user_errors("il-toolkit") as outcome:
        if args.command == "train":
            module_name, _, function = TRAIN_COMMANDS[args.method].partition(":")
            command = getattr(importlib.import_module(module_name), function)
            return command(args.rest, prog=f"il-toolkit train {args.method}")
        return args.func(args)
    return outcome.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
