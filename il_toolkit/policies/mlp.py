"""A trainable MLP policy for vector observations, discrete or continuous actions.

Observations are flattened (dict observations: the vector entries concatenated in key
order), angles (dimensions bounded by [0, 2π] or [-π, π]) encoded as sine and cosine, and
standardised with statistics taken from the training data, then clipped to ``±obs_clip``
standard deviations (10, as SB3's ``VecNormalize``): an entry that hardly moved in the
demonstrations (ALOHA's cube orientation, std 2.5e-5 while the cube sits flat) would otherwise
reach tens of thousands of standard deviations once a learner tips the cube over, and drive the
network far outside anything it was fitted on. Continuous actions are regressed in [-1, 1]
(scaled by the action space's bounds, or by data statistics where the bounds are infinite).
Both normalisers are part of the saved state. What the network sees and how it expresses its
actions is the shared feature pipeline (:class:`il_toolkit.features.state.StateFeatures`, the
same one the flow family uses); the options below are its parts.

With ``action_reference`` (one observation index per action dimension: where the action
is a target for that entry, as PushT's target position for the agent's position or ALOHA's
joint targets for its joint positions) the MLP regresses the offset ``action - obs[reference]``,
standardised with training-data statistics; small corrections then stay precise instead of
being a sliver of the whole board or joint range.

With ``frame`` (a key of :data:`il_toolkit.features.frames.FRAMES`, named by the env's
``policy_frame``) the MLP also sees the frame's features and regresses the actions as the
frame encodes them (PushT: the pusher target in the block's frame), standardised on data.

With ``ignored_obs`` (observation indices) the network does not see those entries. Envs name
them in ``velocity_obs``: the arm joint velocities of a position-servoed robot (ALOHA), which
a learner can copy instead of reading the task (its next joint target is about its velocity
carried on), and then, once stood still, predicts standing still (the "copycat" problem).

Loss (``compute_loss``): cross-entropy for ``Discrete`` actions, mean squared error on
normalised actions for ``Box`` actions. With ``mixture_components`` K > 1 (``Box`` actions) the
head is a mixture density network instead: K diagonal Gaussians over the normalised action,
trained by negative log-likelihood; it acts with the mean of the heaviest component (or a
sample, with ``deterministic=False``). Where the expert's action jumps between two choices in
nearby states (PushT: round the T to the left or to the right), a regressor predicts their
average and can stall there; the mixture picks one (PushT, BC-200, seed 0, 100 seeds: 30% success
against 3% for the regressor in the ``pusht_block`` frame, 72% against 39% in ``pusht_push``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from il_toolkit.config.training_config import ACTIVATIONS
from il_toolkit.features.state import StateFeatures, periodic_dims
from il_toolkit.policies.base import BasePolicy

DEFAULT_OBS_CLIP = 10.0  # standardised observations are clipped to this many standard deviations
LOG_STD_RANGE = (-5.0, 2.0)  # a mixture component's log standard deviation, in normalised action units
_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
if tuple(_ACTIVATIONS) != ACTIVATIONS:  # ILConfig validates names against ACTIVATIONS without importing torch
    raise ImportError(f"MLPPolicy's activations {tuple(_ACTIVATIONS)} and ILConfig's ACTIVATIONS {ACTIVATIONS} differ")


def _vector_keys(space: spaces.Space) -> list[str] | None:
    if not isinstance(space, spaces.Dict):
        return None
    keys = sorted(space.spaces)
    for key in keys:
        sub = space.spaces[key]
        if not isinstance(sub, spaces.Box) or len(sub.shape) > 1:
            raise TypeError(
                f"MLPPolicy takes vector observations, but observation {key!r} is {sub}; use a policy with a "
                "camera backbone (the flow-matching family) for images"
            )
    return keys


def raw_obs_dim(space: spaces.Space) -> int:
    keys = _vector_keys(space)
    if keys is not None:
        return int(sum(np.prod(space.spaces[k].shape) for k in keys))
    if not isinstance(space, spaces.Box) or len(space.shape) > 1:
        raise TypeError(
            f"MLPPolicy takes vector observations, got {space}; use a policy with a camera backbone for images"
        )
    return int(np.prod(space.shape))


class MLPPolicy(BasePolicy):
    """``obs -> MLP -> action``; see the module docstring for normalisation and loss."""

    checkpoint_kind = "mlp"

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: str = "relu",
        action_reference: Sequence[int] | None = None,
        ignored_obs: Sequence[int] | None = None,
        frame: str | None = None,
        obs_clip: float | None = DEFAULT_OBS_CLIP,
        mixture_components: int = 1,
    ) -> None:
        super().__init__(observation_space, action_space)
        if not isinstance(mixture_components, (int, np.integer)) or mixture_components < 1:
            raise ValueError(f"mixture_components must be a positive integer, got {mixture_components!r}")
        if mixture_components > 1 and not isinstance(action_space, spaces.Box):
            raise ValueError(f"mixture_components > 1 needs continuous (Box) actions, got {action_space}: use 1")
        self.mixture_components = int(mixture_components)
        if obs_clip is not None and not obs_clip > 0:
            raise ValueError(f"obs_clip must be a positive number of standard deviations or None, got {obs_clip!r}")
        self.obs_clip = None if obs_clip is None else float(obs_clip)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if isinstance(action_space, spaces.Discrete):
            out_dim = int(action_space.n)
        elif isinstance(action_space, spaces.Box):
            out_dim = int(np.prod(action_space.shape))
        else:
            raise TypeError(f"MLPPolicy supports Discrete and Box actions, got {action_space}")
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        self.activation = activation
        self._keys = _vector_keys(observation_space)
        self.features = StateFeatures(
            obs_dim=raw_obs_dim(observation_space), action_dim=out_dim,
            periodic_dims=periodic_dims(observation_space) if self._keys is None else (),
            ignored_obs=tuple(ignored_obs or ()), frame=frame,
            action_reference=self._check_reference(action_reference, out_dim),
        )
        self.action_reference = None if self.features.action_reference is None else list(self.features.action_reference)
        self.frame_name = frame
        self.frame = self.features.task_frame
        self.periodic_dims = list(self.features.periodic_dims)
        self.ignored_obs = list(self.features.ignored_obs)
        self._feature_columns = self.features.columns
        in_dim = len(self._feature_columns)
        layers: list[nn.Module] = []
        for width in self.hidden_sizes:
            layers += [nn.Linear(in_dim, width), _ACTIVATIONS[activation]()]
            in_dim = width
        self.action_dim = out_dim
        k = self.mixture_components
        layers.append(nn.Linear(in_dim, out_dim if k == 1 else k * (1 + 2 * out_dim)))
        self.model = nn.Sequential(*layers)
        self.model.register_buffer("obs_mean", torch.zeros(len(self._feature_columns)))
        self.model.register_buffer("obs_std", torch.ones(len(self._feature_columns)))
        act_dim = out_dim if isinstance(action_space, spaces.Box) else 1
        self.model.register_buffer("act_center", torch.zeros(act_dim))
        self.model.register_buffer("act_scale", torch.ones(act_dim))
        if isinstance(action_space, spaces.Box) and np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)):
            low = torch.as_tensor(action_space.low.reshape(-1), dtype=torch.float32)
            high = torch.as_tensor(action_space.high.reshape(-1), dtype=torch.float32)
            self.model.act_center.copy_((high + low) / 2)
            self.model.act_scale.copy_(torch.clamp((high - low) / 2, min=1e-6))
        self.model.eval()

    def _check_reference(self, reference: Sequence[int] | None, action_dim: int) -> tuple[int, ...] | None:
        if reference is None:
            return None
        reference = tuple(int(i) for i in reference)
        if not isinstance(self.action_space, spaces.Box) or len(reference) != action_dim:
            raise ValueError(f"action_reference needs one observation index per action dimension ({action_dim} for "
                             f"{self.action_space}), got {list(reference)}")
        return reference

    @property
    def discrete(self) -> bool:
        return isinstance(self.action_space, spaces.Discrete)

    # -- data ---------------------------------------------------------------------------
    def raw_obs(self, observations: Any) -> np.ndarray:
        """A batch of observations as (B, D) float64, flattened (dict entries in key order)."""
        if self._keys is not None:
            parts = [np.asarray(observations[k], dtype=np.float64).reshape(len(observations[k]), -1) for k in self._keys]
            return np.concatenate(parts, axis=1)
        obs = np.asarray(observations, dtype=np.float64)
        return obs.reshape(obs.shape[0], -1)

    def _encode_actions(self, observations: Any, actions: np.ndarray) -> torch.Tensor:
        """(B, Da) float32: the actions as the network regresses them (before standardising):
        the feature pipeline's action codec (task frame, offsets from reference entries, or as given)."""
        actions = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
        return torch.as_tensor(self.features.encode_actions(self.raw_obs(observations), actions), dtype=torch.float32)

    def _decode_actions(self, observations: Any, encoded: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`_encode_actions`: (B, Da) actions in the env's units."""
        return self.features.decode_actions(self.raw_obs(observations), encoded)

    def flatten_obs(self, observations: Any) -> np.ndarray:
        """A batch of observations as (B, features) float32: the feature pipeline's
        :meth:`~il_toolkit.features.state.StateFeatures.features` of the flattened observation."""
        return self.features.features(self.raw_obs(observations))

    def fit_normalizer(self, observations: Any, actions: np.ndarray | None = None) -> None:
        """Set observation (and unbounded action) statistics from training data."""
        flat = torch.as_tensor(self.flatten_obs(observations))
        self.model.obs_mean.copy_(flat.mean(0))
        self.model.obs_std.copy_(flat.std(0).clamp(min=1e-6) if len(flat) > 1 else torch.ones_like(flat[0]))
        unbounded = not self.discrete and not (
            np.all(np.isfinite(self.action_space.low)) and np.all(np.isfinite(self.action_space.high))
        )
        if actions is not None and (unbounded or self.action_reference is not None or self.frame is not None):
            acts = self._encode_actions(observations, actions)
            self.model.act_center.copy_(acts.mean(0))
            self.model.act_scale.copy_(acts.std(0).clamp(min=1e-6))

    def _forward(self, observations: Any) -> torch.Tensor:
        x = (torch.as_tensor(self.flatten_obs(observations)) - self.model.obs_mean) / self.model.obs_std
        if self.obs_clip is not None:
            x = x.clamp(-self.obs_clip, self.obs_clip)
        return self.model(x)

    def compute_loss(self, observations: Any, actions: np.ndarray) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a batch of (observation, expert action) pairs, and metrics for logging."""
        out = self._forward(observations)
        if self.discrete:
            target = torch.as_tensor(np.asarray(actions).reshape(-1), dtype=torch.long) - int(self.action_space.start)
            loss = nn.functional.cross_entropy(out, target)
            accuracy = (out.argmax(-1) == target).float().mean()
            return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}
        target = (self._encode_actions(observations, actions) - self.model.act_center) / self.model.act_scale
        if self.mixture_components > 1:
            loss = -self._mixture_log_prob(out, target).mean()
        else:
            loss = nn.functional.mse_loss(out, target)
        return loss, {"loss": float(loss.detach())}

    def _mixture(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split the head's output (B, K * (1 + 2D)) into component log-weights (B, K), means
        (B, K, D) and log standard deviations (B, K, D), all in normalised action units."""
        k, d = self.mixture_components, self.action_dim
        log_weights = torch.log_softmax(out[:, :k], dim=-1)
        means = out[:, k : k + k * d].reshape(-1, k, d)
        log_stds = out[:, k + k * d :].reshape(-1, k, d).clamp(*LOG_STD_RANGE)
        return log_weights, means, log_stds

    def _mixture_log_prob(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B,) log-density of the normalised targets (B, D) under the mixture."""
        log_weights, means, log_stds = self._mixture(out)
        z = (target[:, None, :] - means) / log_stds.exp()
        per_component = (-0.5 * z**2 - log_stds - 0.5 * math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(log_weights + per_component, dim=-1)

    def _mixture_action(self, out: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """(B, D) normalised actions: the heaviest component's mean, or a sample of the mixture."""
        log_weights, means, log_stds = self._mixture(out)
        rows = torch.arange(len(out))
        if deterministic:
            return means[rows, log_weights.argmax(-1)]
        chosen = torch.distributions.Categorical(logits=log_weights).sample()
        mean, log_std = means[rows, chosen], log_stds[rows, chosen]
        return mean + log_std.exp() * torch.randn_like(mean)

    def parameters(self):
        return self.model.parameters()

    # -- acting -------------------------------------------------------------------------
    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        with torch.no_grad():
            out = self._forward(observations)
        if self.discrete:
            return (out.argmax(-1) + int(self.action_space.start)).numpy().astype(np.int64)
        if self.mixture_components > 1:
            out = self._mixture_action(out, deterministic)
        actions = self._decode_actions(observations, (out * self.model.act_scale + self.model.act_center).numpy())
        actions = actions.reshape((len(actions),) + self.action_space.shape)
        return np.clip(actions, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {"hidden_sizes": self.hidden_sizes, "activation": self.activation,
                "action_reference": self.action_reference, "ignored_obs": self.ignored_obs,
                "frame": self.frame_name, "obs_clip": self.obs_clip, "mixture_components": self.mixture_components}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    @classmethod
    def from_checkpoint(cls, config, tensors: Mapping[str, torch.Tensor], observation_space, action_space) -> "MLPPolicy":
        from il_toolkit.policies.checkpoint import CheckpointError

        policy = cls(observation_space, action_space, config["hidden_sizes"], config["activation"],
                     config.get("action_reference"), config.get("ignored_obs"), config.get("frame"),
                     config.get("obs_clip"),  # checkpoints from before obs_clip: unclipped, as they were trained
                     config.get("mixture_components", 1))
        try:
            policy.model.load_state_dict(dict(tensors))
        except RuntimeError as exc:
            raise CheckpointError(f"checkpoint tensors do not fit an MLPPolicy {config}: {exc}") from exc
        return policy
