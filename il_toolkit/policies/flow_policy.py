"""A chunked flow-matching policy: any ``TRAINER_REGISTRY`` family's models behind :class:`Policy`.

Shape vocabulary (diffusion_policy's): the policy keeps the last ``n_obs_steps`` observations,
samples a chunk of ``horizon`` actions by integrating the learned velocity field from noise
(``n_steps`` of ``solver``, both chosen at inference time, not stored in the weights), and
executes ``n_action_steps`` of them, starting at ``action_offset`` (default
``n_obs_steps - 1``: the chunk is aligned with the first observation of the window), before
planning again. ``reset()`` clears the observation history and the action queue. With
``temporal_ensemble_coeff`` set, it plans at every step instead and averages the overlapping
chunks' predictions for the current step (ACT's temporal ensembling).

Environment observations are mapped to batch keys (:mod:`il_toolkit.model.spec`) by
``observation_keys``, ``{batch_key: path}`` where ``path`` is ``""`` (the whole observation) or
``"pixels/top"``-style keys into a Dict observation; images given as ``(H, W, C)`` are moved
to channels-first. Normalisation statistics live in the models (``normalizer``), so they are
saved in ``model.safetensors`` with the weights.

With ``features`` (a :class:`~il_toolkit.features.state.StateFeatures`, the env's feature
pipeline, saved in ``config.json``) the state is seen as its features (PushT: the block's task
frame; angles as sine and cosine; ALOHA: without the arm velocities) and each planned chunk is
expressed relative to the state it was planned from (PushT: pusher targets relative to the
pusher, in the block's frame), decoded back to env units before it is executed.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from il_toolkit.config.training_config import ConfigError
from il_toolkit.features.observations import STATE_KEYS
from il_toolkit.features.state import StateFeatures, state_features_for
from il_toolkit.model.components import BatchError
from il_toolkit.model.flow_registry import TRAINER_REGISTRY
from il_toolkit.model.spec import DEPTH_PREFIX, IMAGE_PREFIX, STATE_KEY, FlowModelSpec, shortcut_step_size_problem
from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.checkpoint import CheckpointError
from il_toolkit.policies.spaces import add_batch_axis, check_observation, subspace
from il_toolkit.model.flow import SOLVERS

_STATE_NAMES = ("observation.state", *STATE_KEYS)


def _lookup(observation: Any, path: str) -> Any:
    if path and hasattr(observation, "keys") and path in observation.keys():
        return observation[path]  # flattened nested observations ("pixels/head"), as loaded from Minari
    for part in filter(None, path.split("/")):
        observation = observation[part]
    return observation


def default_observation_keys(spec: FlowModelSpec, observation_space: spaces.Space) -> dict[str, str]:
    """Guess ``{batch_key: path}`` for common layouts (Box state, PushT, ALOHA-style pixels dicts)."""
    keys: dict[str, str] = {}
    wanted_images = {IMAGE_PREFIX + c: c for c in spec.cameras}
    wanted_depth = {DEPTH_PREFIX + c: c for c in spec.depth_cameras}
    if not isinstance(observation_space, spaces.Dict):
        if spec.state_dim and len(observation_space.shape or ()) == 1:
            keys[STATE_KEY] = ""
        elif len(wanted_images) == 1 and len(observation_space.shape or ()) == 3:
            keys[next(iter(wanted_images))] = ""
        return keys
    names = set(observation_space.spaces)
    for name in names:  # flattened batch keys used as-is
        if name.startswith(IMAGE_PREFIX) or name.startswith(DEPTH_PREFIX) or name == STATE_KEY:
            keys[name] = name
    if spec.state_dim and STATE_KEY not in keys:
        for name in _STATE_NAMES:
            if name in names:
                keys[STATE_KEY] = name
                break
    for key, camera in wanted_images.items():
        if key not in keys and camera in names and camera not in ("pixels", "depth"):
            keys[key] = camera
    for group, wanted in (("pixels", wanted_images), ("depth", wanted_depth)):
        for key, camera in wanted.items():
            if key in keys or group not in names:
                continue
            sub = observation_space.spaces[group]
            if isinstance(sub, spaces.Dict) and camera in sub.spaces:
                keys[key] = f"{group}/{camera}"
            elif not isinstance(sub, spaces.Dict) and len(wanted) == 1:
                keys[key] = group
    return keys


def _image_shape(space: spaces.Space) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of an image Box given channels-first or channels-last, else None."""
    shape = getattr(space, "shape", None) or ()
    if len(shape) != 3:
        return None
    if shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4):
        return shape[2], shape[0], shape[1]
    return shape[0], shape[1], shape[2]


def spec_from_spaces(observation_space: spaces.Space, action_space: spaces.Space, **fields: Any) -> FlowModelSpec:
    """A :class:`FlowModelSpec` whose inputs match the env's spaces; ``fields`` set the rest.

    Box vector -> state; Box image -> one camera ``"pixels"``; Dict: ``agent_pos``/``state``/...
    -> state, ``pixels`` (a Box, or a Dict of cameras) and top-level image Boxes -> cameras,
    ``depth`` (a Box, or a Dict of cameras) -> depth inputs.
    """
    inferred: dict[str, Any] = {"action_dim": int(np.prod(action_space.shape))}
    cameras: list[str] = []
    depth: list[str] = []
    sizes: set[tuple[int, int]] = set()
    if isinstance(observation_space, spaces.Dict):
        for name in _STATE_NAMES:
            if name in observation_space.spaces:
                inferred["state_dim"] = int(np.prod(observation_space.spaces[name].shape))
                break
        for name, sub in observation_space.spaces.items():  # cameras at the top level (ALOHA obs_type="pixels")
            if name not in ("pixels", "depth") and _image_shape(sub) is not None:
                cameras.append(name)
                sizes.add(_image_shape(sub)[1:])  # type: ignore[index]
        for group, names in (("pixels", cameras), ("depth", depth)):
            sub = observation_space.spaces.get(group)
            subspaces = sub.spaces if isinstance(sub, spaces.Dict) else ({group: sub} if sub is not None else {})
            for camera, cam_space in subspaces.items():
                shape = _image_shape(cam_space)
                if shape is not None:
                    names.append(camera)
                    sizes.add(shape[1:])
    elif len(observation_space.shape or ()) == 1:
        inferred["state_dim"] = int(observation_space.shape[0])
    elif _image_shape(observation_space) is not None:
        cameras.append("pixels")
        sizes.add(_image_shape(observation_space)[1:])  # type: ignore[index]
    if len(sizes) > 1:
        raise ValueError(f"all cameras must share one image size, got {sorted(sizes)}; resize them in the env wrapper")
    if sizes:
        inferred["image_size"] = next(iter(sizes))
    inferred.update(cameras=tuple(cameras), depth_cameras=tuple(depth))
    inferred.update(fields)
    return FlowModelSpec(**inferred)


class FlowMatchingPolicy(BasePolicy):
    """Act with models trained by any ``TRAINER_REGISTRY`` trainer (see module docstring)."""

    checkpoint_kind = "flow_matching"

    def __init__(
        self,
        trainer_key: str,
        models: torch.nn.ModuleDict,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        n_action_steps: int | None = None,
        action_offset: int | None = None,
        n_steps: int = 10,
        solver: str = "euler",
        observation_keys: Mapping[str, str] | None = None,
        inference_options: Mapping[str, Any] | None = None,
        temporal_ensemble_coeff: float | None = None,
        features: StateFeatures | None = None,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        super().__init__(observation_space, action_space)
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"flow-matching policies produce continuous actions; the action space is {action_space}, not a Box")
        trainer_class = TRAINER_REGISTRY.get(trainer_key)  # unknown keys: the error lists the registered ones
        self.trainer_key = trainer_key
        self.sampler = trainer_class(models, {}, None, device)
        self.spec: FlowModelSpec = self.sampler.spec
        if action_space.shape != (self.spec.action_dim,):
            raise ValueError(f"action space {action_space.shape} does not match the model's action_dim={self.spec.action_dim}")
        self.action_offset = self.spec.n_obs_steps - 1 if action_offset is None else int(action_offset)
        max_steps = self.spec.horizon - self.action_offset
        if max_steps < 1:
            raise ConfigError(
                f"a chunk of horizon {self.spec.horizon} holds no action from the window's last observation on "
                f"(action_offset {self.action_offset}, n_obs_steps {self.spec.n_obs_steps}): raise the horizon to at "
                f"least {self.action_offset + 1} or lower " + ("n_obs_steps" if action_offset is None else "action_offset")
            )
        self.n_action_steps = max_steps if n_action_steps is None else int(n_action_steps)
        if not 1 <= self.n_action_steps <= max_steps:
            raise ConfigError(
                f"n_action_steps must be in [1, horizon - action_offset] = [1, {max_steps}], got {self.n_action_steps}: "
                f"execute at most {max_steps} actions of each chunk (or raise the horizon)"
            )
        self.n_steps = n_steps
        self.solver = solver
        self._check_inference(n_steps, solver)
        self.inference_options = dict(inference_options or {})
        self._check_shortcut_step_size()
        self.observation_keys = dict(observation_keys or default_observation_keys(self.spec, observation_space))
        self._check_observation_keys()
        self.features = features
        self._check_features()
        self.temporal_ensemble_coeff = None if temporal_ensemble_coeff is None else float(temporal_ensemble_coeff)
        self.seed = int(seed)
        self.generator = torch.Generator(device=device).manual_seed(self.seed)
        self._history: list[dict[str, torch.Tensor]] = []
        self._queue: np.ndarray | None = None
        self._ensemble: list[np.ndarray] = []

    @classmethod
    def create(
        cls,
        trainer_key: str,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        policy_options: Mapping[str, Any] | None = None,
        features: StateFeatures | None = None,
        **spec_fields: Any,
    ) -> "FlowMatchingPolicy":
        """A fresh (untrained) policy whose spec is inferred from the spaces (see :func:`spec_from_spaces`);
        with ``features``, the state input is their ``n_features`` wide."""
        trainer_class = TRAINER_REGISTRY.get(trainer_key)
        if features is not None:
            spec_fields = {"state_dim": features.n_features, **spec_fields}
        models = trainer_class.build_models(spec_from_spaces(observation_space, action_space, **spec_fields))
        return cls(trainer_key, models, observation_space, action_space, features=features, **dict(policy_options or {}))

    @staticmethod
    def _check_inference(n_steps: int, solver: str) -> None:
        if int(n_steps) < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        if solver not in SOLVERS:
            raise ValueError(f"unknown ODE solver {solver!r}; choose one of {', '.join(SOLVERS)}")

    def _check_shortcut_step_size(self) -> None:
        """A step size to tell the model (``inference_options["shortcut_step_size"]``) needs a shortcut model, and
        is a share of the path in [0, 1]: refused here rather than at the first action."""
        told = self.inference_options.get("shortcut_step_size")
        problem = None if told is None else shortcut_step_size_problem(told, self.spec.shortcut_steps)
        if problem:
            raise ValueError(f"inference option {problem}")

    def _check_observation_keys(self) -> None:
        needed = [key for _, key, _ in self.spec.visual_inputs] + ([STATE_KEY] if self.spec.state_dim else [])
        missing = [key for key in needed if key not in self.observation_keys]
        if missing:
            raise ValueError(
                f"cannot tell where {missing} come from in observations of space {self.observation_space}; pass "
                "observation_keys={batch_key: 'path/in/observation'} (e.g. {'observation.images.top': 'pixels/top'})"
            )
        self._channels_last: dict[str, bool] = {}
        for _, key, channels in self.spec.visual_inputs:
            path = self.observation_keys[key]
            try:
                shape = subspace(self.observation_space, path).shape
            except KeyError as exc:
                raise ValueError(f"observation_keys[{key!r}] = {path!r}, but the observation has no {exc.args[0]!r}") from exc
            self._channels_last[key] = bool(shape) and len(shape) == 3 and shape[-1] == channels and shape[0] != channels

    def _check_features(self) -> None:
        """The feature pipeline must fit the state the observation holds and the model's state input."""
        if self.features is None:
            return
        path = self.observation_keys.get(STATE_KEY)
        if path is None or not self.spec.state_dim:
            raise ValueError("a feature pipeline needs a state input; this policy has none")
        state_space = subspace(self.observation_space, path)
        self.features.check_fits(int(np.prod(state_space.shape)), self.spec.action_dim, f"this env's {path or 'observation'}")
        if self.features.n_features != self.spec.state_dim:
            raise ValueError(f"the feature pipeline gives {self.features.n_features} features; the model's state input "
                             f"takes {self.spec.state_dim}")

    # -- acting -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the observation history and the queued actions (call at episode start)."""
        self._history = []
        self._queue = None
        self._ensemble = []

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def observation_batch(self, observations: Any) -> dict[str, torch.Tensor]:
        """One step of batched env observations -> ``{batch_key: (B, ...)}`` channels-first tensors."""
        batch = {}
        for key, path in self.observation_keys.items():
            try:
                value = torch.as_tensor(np.asarray(_lookup(observations, path)))
            except (KeyError, IndexError, TypeError) as exc:
                raise BatchError(
                    f"the observation has no {path!r}, which this policy reads as {key!r}; "
                    f"it expects observation_keys {self.observation_keys}"
                ) from exc
            if self._channels_last.get(key):
                value = value.permute(0, 3, 1, 2)
            if key == STATE_KEY:
                value = self._state_input(value)
            batch[key] = value
        return batch

    def _state_input(self, raw: torch.Tensor) -> torch.Tensor:
        if self.features is None:
            return raw.float()
        return torch.as_tensor(self.features.features(raw.reshape(raw.shape[0], -1).numpy()))

    def raw_state(self, observations: Any) -> np.ndarray | None:
        """``(B, D)`` float64 raw states of a batch of observations (what the action codec is relative to)."""
        path = self.observation_keys.get(STATE_KEY)
        if self.features is None or path is None:
            return None
        value = np.asarray(_lookup(observations, path), dtype=np.float64)
        return value.reshape(value.shape[0], -1)

    def encode_actions(self, raw_states: np.ndarray | None, actions: np.ndarray) -> np.ndarray:
        """Actions ``(B, Da)`` or chunks ``(B, H, Da)`` as the model learns them, relative to ``raw_states``."""
        if self.features is None or raw_states is None:
            return np.asarray(actions, dtype=np.float32)
        return self.features.encode_actions(raw_states, actions).astype(np.float32)

    def decode_actions(self, raw_states: np.ndarray | None, encoded: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`encode_actions`: env units."""
        if self.features is None or raw_states is None:
            return encoded
        return self.features.decode_actions(raw_states, encoded)

    def _window(self, step: dict[str, torch.Tensor], episode_start: np.ndarray | None) -> dict[str, torch.Tensor]:
        batch_size = next(iter(step.values())).shape[0]
        if self._history and next(iter(self._history[0].values())).shape[0] != batch_size:
            self.reset()
        if episode_start is not None and np.any(episode_start) and self._history:
            rows = torch.as_tensor(np.asarray(episode_start, dtype=bool))
            for past in self._history:
                for key in past:
                    past[key][rows] = step[key][rows]
            self._queue = None
        self._history.append(step)
        self._history = self._history[-self.spec.n_obs_steps :]
        padded = [self._history[0]] * (self.spec.n_obs_steps - len(self._history)) + self._history
        return {key: torch.stack([s[key] for s in padded], dim=1) for key in step}

    def predict_chunk(
        self, window: Mapping[str, Any], *, n_steps: int | None = None, solver: str | None = None, deterministic: bool = True
    ) -> np.ndarray:
        """A whole action chunk ``(B, horizon, Da)`` for a batch of observation windows ``(B, To, ...)``, in the
        model's action units: with a feature pipeline, encoded relative to the state (:meth:`decode_actions`)."""
        n_steps = self.n_steps if n_steps is None else n_steps
        solver = self.solver if solver is None else solver
        self._check_inference(n_steps, solver)
        with torch.inference_mode():
            chunk = self.sampler.sample_actions(
                window, n_steps=n_steps, solver=solver, deterministic=deterministic, generator=self.generator,
                **self.inference_options,
            )
        return chunk.cpu().numpy()

    def predict(
        self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """One observation or a batch (nested Dict observations included); returns ``(action, state)``."""
        key, path = next(iter(self.observation_keys.items()))
        leaf_space = subspace(self.observation_space, path)
        leaf = np.asarray(_lookup(observation, path))
        batched = leaf.ndim == len(leaf_space.shape) + 1
        check_observation(observation, self.observation_space, batched, type(self).__name__)
        obs_batch = observation if batched else add_batch_axis(observation)
        window = self._window(self.observation_batch(obs_batch), episode_start)
        actions = self._act(window, deterministic, self.raw_state(obs_batch))
        return (actions if batched else actions[0]), state

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        return self._act(self._window(self.observation_batch(observations), None), deterministic, self.raw_state(observations))

    def _plan(self, window: dict[str, torch.Tensor], deterministic: bool, raw_states: np.ndarray | None) -> np.ndarray:
        """A chunk ``(B, horizon - action_offset, Da)`` in env units from the current window."""
        chunk = self.predict_chunk(window, deterministic=deterministic)[:, self.action_offset :]
        return self.decode_actions(raw_states, chunk)

    def _act(self, window: dict[str, torch.Tensor], deterministic: bool, raw_states: np.ndarray | None = None) -> np.ndarray:
        if self.temporal_ensemble_coeff is not None:
            return self._act_ensembled(window, deterministic, raw_states)
        if self._queue is None or self._queue.shape[1] == 0:
            self._queue = self._plan(window, deterministic, raw_states)[:, : self.n_action_steps]
        action, self._queue = self._queue[:, 0], self._queue[:, 1:]
        low, high = self.action_space.low, self.action_space.high
        return np.clip(action, low, high).astype(self.action_space.dtype)

    def _act_ensembled(self, window: dict[str, torch.Tensor], deterministic: bool, raw_states: np.ndarray | None) -> np.ndarray:
        """ACT-style temporal ensembling: plan every step and average every stored chunk's
        prediction for this step with weights ``exp(-coeff * i)``, ``i = 0`` the oldest."""
        chunk = self._plan(window, deterministic, raw_states)
        if self._ensemble and self._ensemble[0].shape[0] != chunk.shape[0]:
            self._ensemble = []
        self._ensemble = (self._ensemble + [chunk])[-chunk.shape[1] :]
        n = len(self._ensemble)
        predictions = np.stack([c[:, n - 1 - j] for j, c in enumerate(self._ensemble)])  # (n, B, Da), oldest first
        weights = np.exp(-self.temporal_ensemble_coeff * np.arange(n))  # type: ignore[operator]
        action = np.tensordot(weights / weights.sum(), predictions, axes=1)
        return np.clip(action, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)

    # -- training through the toolkit's supervised loop (BC, DAgger) -----------------------
    @property
    def model(self) -> torch.nn.Module:
        """The trainable state (all components, normaliser included)."""
        return self.sampler.models

    def parameters(self):
        return self.sampler.models.parameters()

    def compute_loss(self, observations: Any, actions: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Flow-matching loss on env observations ``(B, ...)`` and actions ``(B, Da)`` or chunks
        ``(B, horizon, Da)``, so BC and DAgger can train this policy like any other.

        Single observations only fit ``n_obs_steps = 1``; single actions only fit ``horizon = 1``
        (train longer windows with the ``TRAINER_REGISTRY`` trainer on windowed batches).
        """
        if self.spec.n_obs_steps != 1:
            raise ValueError(
                f"compute_loss takes single observations, but this policy stacks n_obs_steps={self.spec.n_obs_steps}; "
                "train it with its TRAINER_REGISTRY trainer on (B, To, ...) windows"
            )
        batch: dict[str, Any] = {k: v[:, None] for k, v in self.observation_batch(observations).items()}
        acts = torch.as_tensor(self.encode_actions(self.raw_state(observations), np.asarray(actions, dtype=np.float64)))
        if acts.dim() == 2 and self.spec.horizon == 1:
            acts = acts[:, None]
        if acts.dim() != 3:
            raise ValueError(
                f"actions of shape {tuple(acts.shape)} do not fit horizon={self.spec.horizon}: pass (B, {self.spec.horizon}, "
                f"{self.spec.action_dim}) chunks, or build the policy with horizon=1 for single actions"
            )
        batch["action"] = acts
        return self.sampler.compute_loss(batch)

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {
            "trainer": self.trainer_key,
            "spec": self.spec.to_json(),
            "n_action_steps": self.n_action_steps,
            "action_offset": self.action_offset,
            "n_steps": self.n_steps,
            "solver": self.solver,
            "observation_keys": self.observation_keys,
            "inference_options": self.inference_options,
            "temporal_ensemble_coeff": self.temporal_ensemble_coeff,
            "features": None if self.features is None else self.features.to_json(),
            "seed": self.seed,
        }

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.sampler.models.state_dict().items()}

    @classmethod
    def from_checkpoint(cls, config, tensors, observation_space, action_space) -> "FlowMatchingPolicy":
        trainer_key = config.get("trainer")
        trainer_class = TRAINER_REGISTRY.get(trainer_key)
        models = trainer_class.build_models(FlowModelSpec.from_json(config["spec"]))
        result = models.load_state_dict(dict(tensors), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"the weights do not fit a {trainer_key} model: missing {result.missing_keys[:5]}, unexpected "
                f"{result.unexpected_keys[:5]}; the checkpoint was written by a different trainer or edited"
            )
        return cls(
            trainer_key,
            models,
            observation_space,
            action_space,
            n_action_steps=config["n_action_steps"],
            action_offset=config["action_offset"],
            n_steps=config["n_steps"],
            solver=config["solver"],
            observation_keys=config["observation_keys"],
            inference_options=config.get("inference_options"),
            temporal_ensemble_coeff=config.get("temporal_ensemble_coeff"),
            # checkpoints from before the feature pipeline saw the raw state, as they were trained
            features=StateFeatures.from_json(config["features"]) if config.get("features") else None,
            seed=config.get("seed", 0),
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, trainer: str | None = None) -> "FlowMatchingPolicy":
        """Restore a saved flow policy; with ``trainer=KEY``, refuse one trained by another trainer."""
        policy = super().load(path)
        assert isinstance(policy, FlowMatchingPolicy)
        if trainer is not None and policy.trainer_key != trainer:
            raise CheckpointError(
                f"{str(path)!r} holds a policy trained by {policy.trainer_key!r}, not {trainer!r}; load it with "
                f"trainer={policy.trainer_key!r} (or none) or train one with {trainer!r}"
            )
        return policy

    def __repr__(self) -> str:
        return (
            f"FlowMatchingPolicy(trainer={self.trainer_key!r}, horizon={self.spec.horizon}, "
            f"n_obs_steps={self.spec.n_obs_steps}, n_action_steps={self.n_action_steps}, n_steps={self.n_steps}, "
            f"solver={self.solver!r}, frame={self.features.frame if self.features else None!r})"
        )


def default_state_features(env: Any, observation_keys: Mapping[str, str] | None = None) -> StateFeatures | None:
    """The feature pipeline a flow policy in ``env`` uses by default: what the env declares
    (:func:`~il_toolkit.features.state.state_features_for`) when its observation is a flat state,
    angles as sine/cosine for the state entry of a Dict observation, None without a state."""
    space = env.observation_space
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return state_features_for(env)
    if isinstance(space, spaces.Dict):
        name = next((n for n in _STATE_NAMES if n in space.spaces), None)
        sub = space.spaces.get(name) if name else None
        if isinstance(sub, spaces.Box) and len(sub.shape) == 1 and isinstance(env.action_space, spaces.Box):
            return state_features_for(env, state_space=sub)
    return None
