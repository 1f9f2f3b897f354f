"""``il-bench``: run benchmark suites and build the leaderboard (also ``il-toolkit bench``).

    il-bench run quick                                   # il_toolkit/bench/suites/quick.toml (shipped)
    il-bench run standard --workers 2                    # a local process pool
    il-bench run full --executor ray --address auto      # a Ray cluster
    il-bench leaderboard output/bench/quick.jsonl --out output/bench/quick_leaderboard
    il-bench suites                                      # the suites and methods there are
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence



def _process_start() -> float:
    """This process's start on the ``time.perf_counter`` clock (Linux: from /proc, so interpreter
    start-up and imports count as harness overhead); elsewhere, the time this module was imported."""
    import os

    now = time.perf_counter()
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return now - age if 0 <= age < 3600 else now
    except (OSError, ValueError, IndexError):
        return now


_STARTED = _process_start()


def build_parser(prog: str = "il-bench") -> argparse.ArgumentParser:
    from il_toolkit.bench.executors import EXECUTORS

    parser = argparse.ArgumentParser(prog=prog, description="Benchmark imitation-learning methods and rank them.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite (skips trials already in the results file)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    run.add_argument("suite", help="a shipped suite's name (il-bench suites lists them) or the path of a .toml file")
    run.add_argument("--results", help="JSON-lines results file (default: output/bench/SUITE.jsonl under the current directory)")
    run.add_argument("--executor", choices=EXECUTORS, default="local",
                     help="local: this machine (a process pool when --workers > 1); ray: a Ray cluster")
    run.add_argument("--workers", type=int, default=1, help="trials at a time (1: in this process)")
    run.add_argument("--address", help="Ray cluster address (auto, ray://host:10001); none: start a local Ray")
    run.add_argument("--workdir", help="checkpoints and trainer logs (default: output/bench/RESULTS_STEM)")
    run.add_argument("--wandb", action="store_true", help="also log each trial as a wandb run grouped by suite (offline by default)")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run.add_argument("--leaderboard", metavar="DIR", help="write the leaderboard to DIR after the run")

    board = sub.add_parser("leaderboard", help="write Markdown + HTML (+ plots) from a results file",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    board.add_argument("results", help="JSON-lines results file written by `il-bench run`")
    board.add_argument("--out", help="output directory (default: the results file's path without .jsonl)")
    board.add_argument("--no-anchors", action="store_true", help="leave out the published reference figures")

    sub.add_parser("suites", help="list suites, methods and envs")
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    from il_toolkit.cli_flags import harmonise

    parser = harmonise(build_parser(prog or "il-bench"))
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.workers < 1:
            parser.error(f"--workers must be >= 1, got {args.workers}")
        if args.address and args.executor != "ray":
            parser.error("--address is for --executor ray")
    from il_toolkit.bench.runner import ResultsBusyError
    from il_toolkit.bench.suite import SuiteError

    try:
        if args.command == "run":
            return _run(args)
        if args.command == "leaderboard":
            return _leaderboard(args.results, args.out, anchors=not args.no_anchors)
        return _suites()
    except (SuiteError, FileNotFoundError, ResultsBusyError) as exc:
        print(f"{prog or 'il-bench'}: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from il_toolkit.bench.runner import run_suite

    summary = run_suite(args.suite, args.results, executor=args.executor, workers=args.workers, address=args.address,
                        workdir=args.workdir, progress=not args.no_progress, use_wandb=args.wandb, started=_STARTED)
    print(summary.text())
    if args.leaderboard:
        _leaderboard(summary.results, args.leaderboard, anchors=True)
    return 0 if summary.n_failed == 0 else 1


def _leaderboard(results: str, out: str | None, *, anchors: bool) -> int:
    from il_toolkit.bench.leaderboard import write_leaderboard

    written = write_leaderboard(results, out, include_anchors=anchors)
    for problem in written.problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"leaderboard: {written.markdown} and {written.html} ({written.n_trials} trials, {len(written.plots)} plots)")
    return 0


def _suites() -> int:
    from il_toolkit.bench.methods import METHOD_REGISTRY
    from il_toolkit.bench.suite import SUITES_DIR, available_suites
    from il_toolkit.envs.registration import toolkit_env_ids

    print(f"suites ({SUITES_DIR}): {', '.join(available_suites()) or '(none)'}")
    print("methods:")
    for name in METHOD_REGISTRY.keys():
        meta = METHOD_REGISTRY.metadata(name)
        print(f"  {name:13s} actions: {'/'.join(meta['action_spaces'])}; observations: {'/'.join(meta['observations'])}; "
              f"{meta['description']}")
    from il_toolkit.experts import DEFAULT_EXPERTS

    print(f"envs (with an expert to demonstrate them): {', '.join(e for e in toolkit_env_ids() if e in DEFAULT_EXPERTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
