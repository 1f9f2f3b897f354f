"""Adapters that give outside objects the toolkit's :class:`Policy` interface.

- :class:`FunctionPolicy`: a plain ``obs -> action`` function plus its spaces.
- :class:`SB3Policy`: a stable-baselines3 model or policy, which also covers imitation's
  policies (they are SB3 policies); saved as ``state_dict`` tensors plus the constructor
  arguments, and rebuilt from an allow-list of policy classes, never by unpickling.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from il_toolkit.policies.base import BasePolicy, Policy
from il_toolkit.policies.spaces import (check_observation, describe, from_unit_actions, is_batched, is_unit_twin,
                                       spaces_match, unit_action_space)

ObsToAction = Callable[[Any], Any]


class FunctionPolicy(BasePolicy):
    """Wrap ``fn(observation) -> action`` (one observation at a time) as a :class:`Policy`."""

    def __init__(self, fn: ObsToAction, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        super().__init__(observation_space, action_space)
        self.fn = fn

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        if isinstance(self.observation_space, spaces.Dict):
            n = len(next(iter(observations.values())))
            rows = [{k: v[i] for k, v in observations.items()} for i in range(n)]
        else:
            rows = list(observations)
        actions = [np.asarray(self.fn(row), dtype=self.action_space.dtype) for row in rows]
        return np.stack(actions)


class RandomPolicy(BasePolicy):
    """Uniform random actions from a seeded copy of the action space (the 0 of normalised scores)."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, seed: int = 0) -> None:
        import copy

        super().__init__(observation_space, action_space)
        self._space = copy.deepcopy(action_space)
        self._space.seed(seed)

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        n = len(next(iter(observations.values()))) if isinstance(observations, dict) else len(observations)
        return np.stack([np.asarray(self._space.sample()) for _ in range(n)])


def as_policy(obj: Any, observation_space: spaces.Space, action_space: spaces.Space) -> Policy:
    """Turn a toolkit policy, an SB3 model/policy or a plain function into a :class:`Policy`."""
    if isinstance(obj, BasePolicy):
        return obj
    if _is_sb3(obj):
        return SB3Policy.from_model(obj)
    if isinstance(obj, Policy):
        return obj
    if callable(obj):
        return FunctionPolicy(obj, observation_space, action_space)
    raise TypeError(
        f"cannot use {type(obj).__name__} as a policy: pass a Policy, an SB3 model or policy, "
        "or a function obs -> action"
    )


def _is_sb3(obj: Any) -> bool:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.policies import BasePolicy as SB3BasePolicy

    return isinstance(obj, (BaseAlgorithm, SB3BasePolicy))


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (nn.Tanh, nn.ReLU, nn.GELU, nn.ELU, nn.LeakyReLU, nn.SiLU)
}


def _policy_classes() -> dict[str, type]:
    from stable_baselines3.common.policies import (
        ActorCriticCnnPolicy,
        ActorCriticPolicy,
        MultiInputActorCriticPolicy,
    )

    return {c.__name__: c for c in (ActorCriticPolicy, ActorCriticCnnPolicy, MultiInputActorCriticPolicy)}


def _extractor_classes() -> dict[str, type]:
    from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN

    return {c.__name__: c for c in (FlattenExtractor, NatureCNN, CombinedExtractor)}


def _to_json(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def sb3_observation_space(space: spaces.Space) -> spaces.Space:
    """``space`` as an SB3 policy trained on it sees it: channel-last images (H, W, C), in a Dict
    or alone, transposed to (C, H, W), as SB3's ``VecTransposeImage`` does while training."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: sb3_observation_space(sub) for key, sub in space.spaces.items()})
    if is_image_space(space) and not is_image_space_channels_first(space):
        return VecTransposeImage.transpose_space(space)
    return space


def _env_observation_space(policy_space: spaces.Space, env_space: spaces.Space | None) -> spaces.Space:
    """The observation space an :class:`SB3Policy` presents: the env's, where the SB3 policy's is
    it or its channel-first twin (SB3 transposes channel-last images in ``predict`` itself)."""
    if env_space is None:
        return policy_space
    if not (spaces_match(policy_space, env_space) or spaces_match(policy_space, sb3_observation_space(env_space))):
        from il_toolkit.policies.base import SpaceMismatchError

        raise SpaceMismatchError(f"the SB3 policy observes {describe(policy_space)}, which is neither the env's "
                                 f"{describe(env_space)} nor its channel-first twin: wrap a policy trained on this env")
    return env_space


class SB3Policy(BasePolicy):
    """A stable-baselines3 (or imitation) actor-critic policy behind the toolkit interface.

    ``action_space``: the env's, when ``policy`` acts in [-1, 1] for an env whose Box bounds
    are other (GAIL and PPO train them so; see :func:`unit_action_space`): its actions are
    then mapped linearly onto the env's bounds, and ``self.action_space`` is the env's.
    """

    checkpoint_kind = "sb3"

    def __init__(self, policy: Any, action_space: spaces.Space | None = None,
                 observation_space: spaces.Space | None = None) -> None:
        self.rescales = action_space is not None and is_unit_twin(policy.action_space, action_space)
        super().__init__(_env_observation_space(policy.observation_space, observation_space),
                         action_space if self.rescales else policy.action_space)
        self.policy = policy

    @classmethod
    def from_model(cls, model: Any) -> "SB3Policy":
        """Wrap an SB3 algorithm (``PPO``...) or an SB3/imitation policy object."""
        from stable_baselines3.common.base_class import BaseAlgorithm

        return cls(model.policy if isinstance(model, BaseAlgorithm) else model)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        check_observation(observation, self.observation_space, is_batched(observation, self.observation_space),
                          type(self).__name__)
        actions, state = self.policy.predict(observation, state, episode_start, deterministic)
        if self.rescales:
            actions = from_unit_actions(actions, self.action_space)
        return actions, state

    def checkpoint_config(self) -> dict[str, Any]:
        """The SB3 constructor arguments that define the network's shape."""
        policy_class = type(self.policy)
        known = _policy_classes()
        exact = next((name for name, c in known.items() if policy_class is c), None)  # MultiInput... subclasses ActorCritic...
        base = exact or next((name for name, c in known.items() if isinstance(self.policy, c)), None)
        if base is None:
            raise TypeError(
                f"saving {policy_class.__name__} is not supported; supported SB3 policies: {sorted(known)}"
            )
        params = self.policy._get_constructor_parameters()
        activation = params["activation_fn"].__name__
        extractor = params["features_extractor_class"].__name__
        if activation not in _ACTIVATIONS or extractor not in _extractor_classes():
            raise TypeError(
                f"cannot save an SB3 policy with activation {activation} / extractor {extractor}; "
                f"supported activations {sorted(_ACTIVATIONS)}, extractors {sorted(_extractor_classes())}"
            )
        return {
            "policy_class": base,
            "net_arch": _to_json(params["net_arch"]),
            "activation_fn": activation,
            "ortho_init": bool(params["ortho_init"]),
            "log_std_init": float(params["log_std_init"]),
            "use_sde": bool(params["use_sde"]),
            "squash_output": bool(params["squash_output"]),
            "features_extractor_class": extractor,
            "features_extractor_kwargs": _to_json(params.get("features_extractor_kwargs") or {}),
            "normalize_images": bool(params["normalize_images"]),
            "share_features_extractor": bool(getattr(self.policy, "share_features_extractor", True)),
            "rescaled_actions": self.rescales,
        }

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The state dict. SB3 names a shared features extractor three times (``features_extractor``,
        ``pi_``/``vf_features_extractor``: NatureCNN, CombinedExtractor); safetensors refuses tensors
        that share memory, so the repeats are copies, and loading writes them into the one module."""
        tensors: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for name, tensor in self.policy.state_dict().items():
            tensors[name] = tensor.clone() if tensor.data_ptr() in seen else tensor
            seen.add(tensor.data_ptr())
        return tensors

    @classmethod
    def from_checkpoint(
        cls,
        config: dict[str, Any],
        tensors: Mapping[str, torch.Tensor],
        observation_space: spaces.Space,
        action_space: spaces.Space,
    ) -> "SB3Policy":
        policy_class = _policy_classes()[config["policy_class"]]
        net_arch = config["net_arch"]
        rescaled = bool(config.get("rescaled_actions", False))
        policy = policy_class(
            sb3_observation_space(observation_space),
            unit_action_space(action_space) if rescaled else action_space,
            lr_schedule=lambda _: 0.0,
            net_arch=net_arch,
            activation_fn=_ACTIVATIONS[config["activation_fn"]],
            ortho_init=config["ortho_init"],
            log_std_init=config["log_std_init"],
            use_sde=config["use_sde"],
            squash_output=config["squash_output"],
            features_extractor_class=_extractor_classes()[config["features_extractor_class"]],
            features_extractor_kwargs=config["features_extractor_kwargs"],
            normalize_images=config["normalize_images"],
            share_features_extractor=config["share_features_extractor"],
        )
        missing, unexpected = policy.load_state_dict(dict(tensors), strict=False)
        if missing or unexpected:
            from il_toolkit.policies.checkpoint import CheckpointError

            raise CheckpointError(
                f"checkpoint tensors do not fit a {config['policy_class']} with net_arch {net_arch}: "
                f"missing {missing}, unexpected {unexpected}; save the policy again"
            )
        policy.set_training_mode(False)
        return cls(policy, action_space if rescaled else None, observation_space)
