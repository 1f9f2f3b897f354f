"""A flow trainer's resumable training state on disk: ``trainer_state.safetensors`` (models, optimizer moments,
random generators) and ``trainer_state.json`` (trainer key, spec, step, optimizer settings).

Written so that a run killed at any moment leaves a state that loads: each file is replaced atomically
(:mod:`il_toolkit.atomic_files`), and the JSON's content is also stored in the tensors file's metadata, which is what
loading reads (states written before that have only the JSON). A state that cannot be read (cut short by a full
disk or a copy) is reported with the directory to delete.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from il_toolkit.atomic_files import replace_atomically, write_text_atomically

TENSORS = "trainer_state.safetensors"
META = "trainer_state.json"
_META_KEY = "trainer_state"  # the safetensors metadata entry that holds META's content


def write_training_state(directory: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``tensors`` (contiguous CPU tensors) and ``meta`` (JSON-able) to ``directory``, each file atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, indent=2)
    replace_atomically(directory / TENSORS, lambda path: save_file(dict(tensors), str(path), metadata={_META_KEY: text}))
    write_text_atomically(directory / META, text)
    return directory


def read_training_state(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` as :func:`write_training_state` wrote them; ``CheckpointError`` naming the fix when the
    state is missing or damaged."""
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_training_meta(directory)
    with _reported_as_damaged(directory):
        return load_file(str(directory / TENSORS)), meta


def read_training_meta(directory: str | Path) -> dict[str, Any]:
    """The JSON part of the state in ``directory`` (trainer, spec, step, optimizer settings) without its tensors:
    from the tensors file's header (the JSON file for states written before it held it)."""
    from safetensors import safe_open

    from il_toolkit.policies.checkpoint import CheckpointError

    directory = Path(directory)
    tensors_path, meta_path = directory / TENSORS, directory / META
    if not tensors_path.is_file():
        if meta_path.is_file():
            raise CheckpointError(f"the training state in {str(directory)!r} is incomplete (no {TENSORS} beside "
                                  f"{META}); it cannot be resumed: delete {str(directory)!r} to train again from step 0")
        raise CheckpointError(f"{str(directory)!r} has no {TENSORS}; save one with save_training_state()")
    with _reported_as_damaged(directory):
        with safe_open(str(tensors_path), framework="pt") as handle:
            embedded = (handle.metadata() or {}).get(_META_KEY)
        return json.loads(embedded if embedded is not None else meta_path.read_text())


def saved_training_step(directory: str | Path) -> int | None:
    """The step a resumable state in ``directory`` was saved at, or ``None`` where there is none (or it is damaged:
    resuming then says so)."""
    try:
        return int(read_training_meta(directory)["iterations"])
    except (ValueError, KeyError, TypeError):  # CheckpointError is a ValueError
        return None


@contextlib.contextmanager
def _reported_as_damaged(directory: Path) -> Iterator[None]:
    """Turn what reading a cut or overwritten state raises into a ``CheckpointError`` that names the fix."""
    from safetensors import SafetensorError

    from il_toolkit.policies.checkpoint import CheckpointError

    try:
        yield
    except (OSError, ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(
            f"the training state in {str(directory)!r} is damaged ({type(exc).__name__}: {exc}); it cannot be resumed: "
            f"delete {str(directory)!r} to train again from step 0 (copy out {str(directory / 'policy')!r} first to "
            "keep the policy of its last checkpoint)"
        ) from exc


def has_training_state(directory: str | Path) -> bool:
    """Whether ``directory`` holds a training state (whole or damaged) to resume from."""
    return (Path(directory) / TENSORS).is_file() or (Path(directory) / META).is_file()

