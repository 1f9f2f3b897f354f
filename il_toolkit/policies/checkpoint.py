"""Directory checkpoints: ``config.json`` + ``model.safetensors``, never pickles.

Layout of a saved policy directory::

    config.json          {"format": "il_toolkit.policy", "format_version": 1, "kind": ...,
                          "observation_space": ..., "action_space": ..., "config": {...},
                          "weights": {"file": "model.safetensors", "bytes": N, "sha256": ...}}
    model.safetensors    the tensors (possibly empty for parameter-free policies)

The size and hash recorded in ``config.json`` let a truncated or swapped weights file be
refused with a clear message instead of a confusing shape error later.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from il_toolkit.atomic_files import replace_atomically, write_text_atomically

FORMAT = "il_toolkit.policy"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A path that is not a valid il_toolkit checkpoint; the message says what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(
    path: str | os.PathLike,
    *,
    kind: str,
    header: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
) -> Path:
    """Write ``tensors`` and a config describing them into directory ``path``.

    The weights are written to a temporary file and renamed into place, then
    ``config.json`` is written last, so an interrupted save never looks complete.
    """
    from safetensors.torch import save_file

    from il_toolkit import __version__

    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    config_path = directory / CONFIG_FILE
    if config_path.exists():
        config_path.unlink()  # an old config must not vouch for new, half-written weights
    contiguous = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    replace_atomically(weights, lambda path: save_file(contiguous, str(path)))
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "toolkit_version": __version__,
        **header,
        "weights": {"file": WEIGHTS_FILE, "bytes": weights.stat().st_size, "sha256": _sha256(weights)},
    }
    write_text_atomically(config_path, json.dumps(config, indent=2, sort_keys=True))
    return directory


def _refuse_non_directory(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {str(path)!r}: the path does not exist")
    head = b""
    if path.is_file():
        with path.open("rb") as f:
            head = f.read(4)
    if head.startswith(_ZIP_MAGIC):
        raise CheckpointError(
            f"{str(path)!r} is a zip archive (an SB3 .zip or torch.save file). il_toolkit never "
            "unpickles files it is handed; load the model yourself in code you trust and wrap it "
            "with il_toolkit.policies.SB3Policy.from_model(model), then .save(DIRECTORY)"
        )
    if head[:2] in _PICKLE_MAGIC:
        raise CheckpointError(
            f"{str(path)!r} is a pickle file. il_toolkit never unpickles files it is handed; pass a "
            "checkpoint directory written by Policy.save() (config.json + model.safetensors)"
        )
    raise CheckpointError(
        f"{str(path)!r} is a file; a policy checkpoint is a directory holding {CONFIG_FILE} and "
        f"{WEIGHTS_FILE}, as written by Policy.save(DIRECTORY)"
    )


def _policy_inside(directory: Path) -> str:
    """Where the policy is when ``directory`` is a training run's folder rather than a policy's: its
    output_dir (the policy is ``best/``) or its resumable training state ``checkpoint/`` (which holds
    the latest step's policy in ``policy/`` beside the trainer's state); "" otherwise."""
    if (directory / "policy" / CONFIG_FILE).is_file():
        best = directory.parent / "best"
        trained = f", or the run's trained policy {str(best)!r}" if (best / CONFIG_FILE).is_file() else ""
        return (f"it is a training run's resumable state (the trainer's state beside a policy): pass its policy "
                f"{str(directory / 'policy')!r} (the latest checkpoint's){trained}")
    if (directory / "best" / CONFIG_FILE).is_file():
        return f"this looks like a training run's output_dir: its policy is {str(directory / 'best')!r}"
    if (directory / "checkpoint" / "policy" / CONFIG_FILE).is_file():
        return (f"this looks like the output_dir of a training run that has not finished: its latest checkpoint's "
                f"policy is {str(directory / 'checkpoint' / 'policy')!r}")
    return ""


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and validate a checkpoint directory: returns ``(config, tensors)``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(path)
    if not directory.is_dir():
        _refuse_non_directory(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        hint = _policy_inside(directory)
        raise CheckpointError(
            f"{str(directory)!r} has no {CONFIG_FILE}: " + (hint if hint else "it is not an il_toolkit checkpoint, "
                                                            "or its save was interrupted; save the policy again")
        )
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{str(config_path)!r} is not valid JSON ({exc}); save the policy again") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        hint = _policy_inside(directory)
        hint = f" ({hint})" if hint else ""
        raise CheckpointError(
            f"{str(config_path)!r} does not describe an il_toolkit policy (expected "
            f"\"format\": \"{FORMAT}\"); pass a directory written by Policy.save(){hint}"
        )
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(directory)!r} was written by a newer il_toolkit (format_version "
            f"{config['format_version']} > {FORMAT_VERSION}); upgrade il_toolkit"
        )
    weights_info = config.get("weights", {})
    weights = directory / weights_info.get("file", WEIGHTS_FILE)
    if not weights.is_file():
        raise CheckpointError(
            f"{str(directory)!r} is missing {weights.name}; the checkpoint is incomplete, save the policy again"
        )
    expected_bytes = weights_info.get("bytes")
    actual_bytes = weights.stat().st_size
    if expected_bytes is not None and actual_bytes != expected_bytes:
        raise CheckpointError(
            f"{str(weights)!r} is {actual_bytes} bytes but {CONFIG_FILE} records {expected_bytes}: the file "
            "is truncated or was replaced; restore it or save the policy again"
        )
    expected_hash = weights_info.get("sha256")
    if expected_hash is not None and _sha256(weights) != expected_hash:
        raise CheckpointError(
            f"{str(weights)!r} does not match the sha256 recorded in {CONFIG_FILE}: the file is corrupt "
            "or was replaced; restore it or save the policy again"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{str(weights)!r} is not a readable safetensors file ({exc}); save the policy again") from exc
    return config, tensors
