"""One command line: every flag answers to both spellings, and a near miss names the right flag.

The toolkit's flags come from several traditions (the user's documented ``--bc_epochs`` and
``--output_dir``, Unix-style ``--dataset-id`` and ``--no-progress``). :func:`harmonise` makes
each parser accept the other spelling of every long option (``--dataset_id`` for
``--dataset-id``, ``--no-progress`` for ``--no_progress``; help shows the documented one) and
answers an unknown flag with the closest known ones. Subcommand parsers are harmonised too.
"""

from __future__ import annotations

import argparse
import difflib
from typing import NoReturn


class CommandLineError(ValueError):
    """Flags that cannot go together or name something unusable: reported as one line, exit code 2."""


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (seeds, budgets where 0 means none)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (learning rates)."""
    value = float(text)
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _other_spellings(option: str) -> list[str]:
    """``--a_b-c`` -> ``--a-b-c`` and ``--a_b_c`` (long options only)."""
    if not option.startswith("--"):
        return []
    body = option[2:]
    return [s for s in ("--" + body.replace("_", "-"), "--" + body.replace("-", "_")) if s != option]


def harmonise(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` (and its subcommands' parsers) both spellings of every long flag and
    suggestions for unknown flags; returns ``parser``."""
    for action in parser._actions:
        for option in list(action.option_strings):
            for alias in _other_spellings(option):
                if alias not in parser._option_string_actions:  # accepted, not shown in --help
                    parser._option_string_actions[alias] = _alias_of(action, alias)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                harmonise(sub)
    _suggest_on_error(parser)
    return parser


def _alias_of(action: argparse.Action, alias: str) -> argparse.Action:
    """``action`` under another spelling; a ``--flag/--no-flag`` pair needs its own action, since
    argparse reads the value from which of its own spellings was given."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return argparse._StoreConstAction([alias], action.dest, const=not alias.startswith(("--no-", "--no_")),
                                          default=argparse.SUPPRESS)
    return action


def _known_flags(parser: argparse.ArgumentParser) -> set[str]:
    """Every long flag of ``parser`` and its subcommands, as documented (not the other spellings)."""
    known = {k for action in parser._actions for k in action.option_strings if k.startswith("--")}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                known |= _known_flags(sub)
    return known


def _suggest_on_error(parser: argparse.ArgumentParser) -> None:
    original = parser.error

    def error(message: str) -> NoReturn:
        if "unrecognized arguments:" in message:
            known = sorted(_known_flags(parser))
            hints = []
            for token in message.split("unrecognized arguments:", 1)[1].split():
                if token.startswith("--"):
                    close = difflib.get_close_matches(token.split("=", 1)[0], known, n=2, cutoff=0.6)
                    if close:
                        hints.append(f"{token}: did you mean {' or '.join(close)}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        original(message)

    parser.error = error  # type: ignore[method-assign]
