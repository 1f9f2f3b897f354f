"""The one policy interface shared by every learner, expert and person in the toolkit.

Modelled on stable-baselines3's ``PolicyPredictor`` so that
``stable_baselines3.common.evaluation.evaluate_policy(policy, env)`` accepts any of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces
from huggingface_hub import ModelHubMixin

from il_toolkit.policies import checkpoint
from il_toolkit.policies.spaces import (add_batch_axis, check_observation, describe, is_batched, space_from_json,
                                       space_to_json, spaces_match)


@runtime_checkable
class Policy(Protocol):
    """What every policy offers.

    ``predict`` takes one observation, or a batch with a leading dimension, exactly like
    SB3: it returns ``(action, state)`` with the action batched iff the observation was.
    ``reset`` clears per-episode memory (action queues, observation history).
    ``save(path)`` writes a directory of ``config.json`` + ``model.safetensors`` that
    :func:`il_toolkit.policies.load` restores in a new process.
    """

    observation_space: spaces.Space
    action_space: spaces.Space

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]: ...

    def reset(self) -> None: ...

    def save(self, path: str | os.PathLike) -> Path: ...


class PolicyNotSaveableError(TypeError):
    """A policy that is code rather than parameters (e.g. a plain function)."""


MODEL_CARD = """---
{{ card_data }}
---

# {{ model_name | default("il_toolkit policy") }}

A policy trained with il_toolkit (interactive imitation learning on
Gymnasium envs). Load it with:

```python
from il_toolkit.policies import BasePolicy

policy = BasePolicy.from_pretrained("{{ repo_id | default("path/to/this/folder") }}")
action, _ = policy.predict(observation)
```

`config.json` holds the policy's kind, spaces and settings, `model.safetensors` its weights;
`eval_info.json`, when present, its evaluation (LeRobot's format).
"""


class BasePolicy(ModelHubMixin, library_name="il_toolkit", tags=["il_toolkit", "imitation-learning", "robotics"],
                 model_card_template=MODEL_CARD):
    """Shared plumbing for toolkit policies: batching in ``predict``, checkpoint I/O and the
    Hugging Face Hub (``save_pretrained``, ``from_pretrained``, ``push_to_hub``; safetensors only,
    offline unless asked).

    Subclasses implement :meth:`_predict_batch` (a batch of observations to a batch of
    actions) and, if they can be saved, set ``checkpoint_kind`` (a key of
    ``POLICY_REGISTRY``) and implement :meth:`checkpoint_config`,
    :meth:`checkpoint_tensors` and :meth:`from_checkpoint`.
    """

    checkpoint_kind: ClassVar[str | None] = None
    # True: the action depends on the observation alone (no memory, no queue of planned actions), so asking
    # it about states off the episode (DAgger's chunk labels, acted out in a branch) changes nothing after
    memoryless: ClassVar[bool] = False
    eval_info: dict[str, Any] | None = None  # written as eval_info.json beside a save_pretrained checkpoint
    # the env id the policy was trained in, which the training commands set: saved in config.json, and evaluating the
    # policy in another env (whose spaces may fit all the same) is warned about; None where unknown
    trained_env: str | None = None

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    # -- acting ------------------------------------------------------------------------
    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Act on one observation or a batch; returns ``(action, state)`` like SB3."""
        batched = is_batched(observation, self.observation_space)
        check_observation(observation, self.observation_space, batched, type(self).__name__)
        obs_batch = observation if batched else add_batch_axis(observation)
        actions = self._predict_batch(obs_batch, deterministic=deterministic)
        return (actions if batched else actions[0]), state

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Stateless by default."""

    # -- checkpoints -------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments."""
        return {}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors to store in ``model.safetensors``."""
        return {}

    @classmethod
    def from_checkpoint(
        cls,
        config: dict[str, Any],
        tensors: Mapping[str, torch.Tensor],
        observation_space: spaces.Space,
        action_space: spaces.Space,
    ) -> "BasePolicy":
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into directory ``path``."""
        if self.checkpoint_kind is None:
            raise PolicyNotSaveableError(
                f"{type(self).__name__} cannot be saved: it is code, not parameters. Register it as an "
                "expert (il_toolkit.experts.EXPERT_REGISTRY) or train a policy from it"
            )
        header = {
            "observation_space": space_to_json(self.observation_space),
            "action_space": space_to_json(self.action_space),
            "config": self.checkpoint_config(),
            **({"trained_env": self.trained_env} if self.trained_env else {}),
        }
        return checkpoint.write_checkpoint(
            path, kind=self.checkpoint_kind, header=header, tensors=self.checkpoint_tensors()
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BasePolicy":
        """Restore a policy saved by this class (see :func:`il_toolkit.policies.load`)."""
        from il_toolkit.policies import load

        policy = load(path)
        if not isinstance(policy, cls):
            raise checkpoint.CheckpointError(
                f"{str(path)!r} holds a {type(policy).__name__}, not a {cls.__name__}; "
                "use il_toolkit.policies.load(path) to restore whatever it holds"
            )
        return policy

    # -- the Hugging Face Hub (huggingface_hub's ModelHubMixin) ---------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike, *, eval_info: Mapping[str, Any] | None = None,
                        **kwargs: Any) -> str | None:
        """:meth:`save` plus a model card (``README.md``) and, with ``eval_info`` (LeRobot's
        ``eval_info.json``: ``EvalResult.to_lerobot()``), the evaluation; ``push_to_hub=True,
        repo_id=...`` uploads the folder too (needs network and a token)."""
        if eval_info is not None:
            self.eval_info = dict(eval_info)
        return super().save_pretrained(save_directory, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        import json

        self.save(save_directory)
        if self.eval_info is not None:
            (Path(save_directory) / "eval_info.json").write_text(json.dumps(self.eval_info, indent=2))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *, local_files_only: bool = True,
                        **kwargs: Any) -> "BasePolicy":
        """A policy from a local folder or a Hugging Face Hub repository id. Offline by default:
        a repository must already be in the local cache unless ``local_files_only=False``."""
        return super().from_pretrained(pretrained_model_name_or_path, local_files_only=local_files_only, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: Any, force_download: bool,
                         local_files_only: bool, token: Any, **kwargs: Any) -> "BasePolicy":
        path = Path(model_id)
        if not path.is_dir():
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import LocalEntryNotFoundError

            try:
                path = Path(snapshot_download(model_id, revision=revision, cache_dir=cache_dir, token=token,
                                              force_download=force_download, local_files_only=local_files_only,
                                              allow_patterns=["config.json", "model.safetensors", "*.md", "*.json"]))
            except LocalEntryNotFoundError as exc:
                raise checkpoint.CheckpointError(
                    f"{model_id!r} is neither a local folder nor in the local Hugging Face cache, and downloads are off by "
                    "default: pass local_files_only=False to download it (needs network), or give a folder"
                ) from exc
        return cls.load(path)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(observation_space={describe(self.observation_space)}, "
            f"action_space={describe(self.action_space)})"
        )


class SpaceMismatchError(ValueError):
    """Two spaces that should agree do not; the message names both."""


def check_spaces(
    what: str,
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_observation_space: spaces.Space,
    env_action_space: spaces.Space,
    fix: str,
) -> None:
    """Raise :class:`SpaceMismatchError` unless ``what``'s spaces equal the env's."""
    for name, ours, theirs in (
        ("observation", observation_space, env_observation_space),
        ("action", action_space, env_action_space),
    ):
        if not spaces_match(ours, theirs):
            raise SpaceMismatchError(
                f"{what} {name} space {describe(ours)} does not match env {name} space {describe(theirs)}: {fix}"
            )


def spaces_from_header(config: Mapping[str, Any]) -> tuple[spaces.Space, spaces.Space]:
    return space_from_json(config["observation_space"]), space_from_json(config["action_space"])
