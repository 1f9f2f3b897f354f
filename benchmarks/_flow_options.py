"""Command-line options the flow-matching benchmarks share: how action chunks are scaled and
whether the policies are shortcut models, each a ``FlowModelSpec`` field of the same name."""

from __future__ import annotations

import argparse
from typing import Any

from il_toolkit.model.spec import ACTION_STATISTICS, DEFAULT_SHORTCUT_EMA_DECAY


def add_action_statistics_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--action-statistics", default="per_dimension", choices=sorted(ACTION_STATISTICS),
                        help="action chunks scaled every position alike (the default) or position by position")


def add_shortcut_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shortcut-steps", type=int, default=0, metavar="M",
                        help="shortcut models (Frans et al. 2024) with smallest step 1/M, a power of two (0: plain "
                             "flow matching)")
    parser.add_argument("--shortcut-fraction", type=float, default=0.25,
                        help="share of every batch on the shortcut's self-consistency targets")
    parser.add_argument("--shortcut-ema-decay", type=float, default=DEFAULT_SHORTCUT_EMA_DECAY,
                        help="decay of the moving average of the velocity net that makes the self-consistency "
                             "targets (0: the net itself)")


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """Both of the above."""
    add_action_statistics_option(parser)
    add_shortcut_options(parser)


def spec_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``FlowModelSpec`` fields the parsed options set, by their spec names."""
    return {"action_statistics": args.action_statistics, "shortcut_steps": args.shortcut_steps,
            "shortcut_fraction": args.shortcut_fraction, "shortcut_ema_decay": args.shortcut_ema_decay}
