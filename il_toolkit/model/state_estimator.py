"""Estimate an env's full state from its cameras: the perception half of a pixel policy.

In simulation the full state (PushT: block x, y and angle) is known while the demonstrations are
recorded; a network trained to read it off the images, supervised by it, turns a pixel
observation into what a state policy acts on. Learning that mapping is plain regression and
cheap on a CPU (a 0.1 M-parameter keypoint network read PushT's block to 2.5 board units, half
an image pixel, after 150 CPU seconds), where learning actions end-to-end from pixels is not.
The state is supervision in training only: at inference the network sees the observation alone.

Architecture, per camera::

    image (B, 3, H, W) uint8 --conv x4 (GroupNorm, ReLU; /stride resolution)--> (B, K, H/s, W/s)
        --spatial softmax--> K expected keypoint positions (B, 2K) in [-1, 1]

then an MLP over every camera's keypoints predicts the state entries the observation does not
give: angles as (sin, cos), the rest standardised. The observation's own state entries (PushT's
``agent_pos``, ALOHA's joints) are copied into the estimate but are not the MLP's input by
default (``reads_given``): in expert demonstrations the agent's pose tracks the object it goes
for, so an estimator that reads it learns the object from the arm, and in closed loop the
policy's own arm then decides where the object is estimated to be (measured on ALOHA transfer:
shuffling the joints across frames moved the cube estimate by 65 mm on average). Entries the observation gives exactly (found in the training data) are
copied, not estimated. Spatial-softmax keypoints as in Levine et al. (2016), "End-to-end training
of deep visuomotor policies", and robomimic's image encoders.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from il_toolkit.features.state import periodic_dims
from il_toolkit.model.backbones import to_float_image


class SpatialSoftmax(nn.Module):
    """Feature maps ``(B, K, h, w)`` -> each map's softmax-weighted mean position ``(B, 2K)``:
    the K x coordinates, then the K y coordinates, in [-1, 1]."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, k, h, w = features.shape
        weights = features.flatten(2).softmax(dim=-1).view(b, k, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=features.device)
        ys = torch.linspace(-1.0, 1.0, h, device=features.device)
        return torch.cat([(weights.sum(dim=2) * xs).sum(dim=-1), (weights.sum(dim=3) * ys).sum(dim=-1)], dim=1)


KEYPOINT_STRIDES = (2, 4)
COPY_TOLERANCE = 1e-6  # relative: a state entry this close to an observation entry on every frame is copied


def keypoint_encoder(width: int, keypoints: int, stride: int = 4) -> nn.Sequential:
    """``(B, 3, H, W)`` floats in [0, 1] -> ``(B, 2 * keypoints)`` (see the module docstring); the
    keypoint maps are at 1/``stride`` of the image's resolution (2: finer positions of small
    objects, about 2.5x the compute of 4)."""
    if stride not in KEYPOINT_STRIDES:
        raise ValueError(f"stride must be one of {KEYPOINT_STRIDES}, got {stride}")
    groups = min(8, width)
    return nn.Sequential(
        nn.Conv2d(3, width, 5, stride=2, padding=2), nn.GroupNorm(groups, width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.GroupNorm(groups, width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=stride // 2, padding=1), nn.GroupNorm(groups, 2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GroupNorm(groups, 2 * width), nn.ReLU(),
        nn.Conv2d(2 * width, keypoints, 1), SpatialSoftmax(),
    )


@dataclass(frozen=True)
class StateEstimatorConfig:
    """What shapes a :class:`StateEstimator`; stored in its policy's ``config.json``.

    ``cameras``: the flat observation keys of the images (``"pixels"``, ``"pixels/top"``), each
    ``(H, W, 3)`` uint8. ``given_key``: the flat key of the observation's own state vector
    (``"agent_pos"``) or None; ``given_dim`` its size. ``state_dim``: the full state's size;
    ``periodic``: its angle entries, each ``[index, low]`` with values in ``[low, low + 2π)``;
    ``copied``: ``[state index, given index]`` pairs the observation gives exactly. ``unused``:
    entries the state policy never reads (its feature pipeline's ``ignored_obs``, such as ALOHA's
    arm velocities): not estimated (a single image does not show them), filled with their mean.
    ``reads_given``: the MLP also reads the given entries (see the module docstring; estimators
    saved before this option existed did). ``width``, ``keypoints``, ``hidden``: the CNN's channels, keypoints per camera and the MLP's
    width; ``stride``: the keypoint maps' resolution divisor, 4 or 2 (2 for objects a few pixels
    across, such as ALOHA's cube in a 48x64 image).
    """

    cameras: tuple[str, ...]
    state_dim: int
    given_key: str | None = None
    reads_given: bool = False
    given_dim: int = 0
    periodic: tuple[tuple[int, float], ...] = ()
    copied: tuple[tuple[int, int], ...] = ()
    unused: tuple[int, ...] = ()
    width: int = 16
    keypoints: int = 32
    hidden: int = 256
    stride: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "periodic", tuple((int(i), float(low)) for i, low in self.periodic))
        object.__setattr__(self, "copied", tuple((int(i), int(j)) for i, j in self.copied))
        object.__setattr__(self, "unused", tuple(sorted({int(i) for i in self.unused} - {i for i, _ in self.copied})))
        if not self.cameras:
            raise ValueError("a state estimator reads at least one camera image")
        if self.stride not in KEYPOINT_STRIDES:
            raise ValueError(f"stride must be one of {KEYPOINT_STRIDES}, got {self.stride}")
        if self.given_key is None and self.given_dim:
            raise ValueError("given_dim > 0 needs the observation key it comes from (given_key)")

    @property
    def periodic_dims(self) -> list[int]:
        """Estimated angles."""
        skip = set(self.copied_dims) | set(self.unused)
        return [i for i, _ in self.periodic if i not in skip]

    @property
    def copied_dims(self) -> list[int]:
        return [i for i, _ in self.copied]

    @property
    def linear_dims(self) -> list[int]:
        """Estimated entries regressed as standardised numbers (neither copied nor angles)."""
        skip = set(self.copied_dims) | set(self.unused) | {i for i, _ in self.periodic}
        return [i for i in range(self.state_dim) if i not in skip]

    @property
    def estimated_dims(self) -> list[int]:
        return sorted(self.linear_dims + self.periodic_dims)

    @property
    def output_dim(self) -> int:
        return len(self.linear_dims) + 2 * len(self.periodic_dims)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(cameras=list(self.cameras), periodic=[list(p) for p in self.periodic],
                    copied=[list(c) for c in self.copied], unused=list(self.unused))
        return data

    @classmethod
    def infer(cls, cameras: Sequence[str], given_key: str | None, given: np.ndarray | None, states: np.ndarray,
              state_space: Any, unused: Sequence[int] = (), **sizes: Any) -> "StateEstimatorConfig":
        """The estimator for data: images under ``cameras``, the observation's own state ``given``
        ``(N, Dg)`` under ``given_key`` (or None) beside the full ``states`` ``(N, D)`` of
        ``state_space`` (a Box; its angles are found from its bounds); a state entry equal to a given
        entry on every frame (to float32 precision) is copied, not estimated."""
        periodic = [(i, float(state_space.low[i])) for i in periodic_dims(state_space)]
        copied: list[tuple[int, int]] = []
        given_dim = 0
        if given_key is not None and given is not None:
            given = np.asarray(given, np.float64).reshape(len(states), -1)
            given_dim = given.shape[1]
            for i in range(states.shape[1]):
                column = states[:, i : i + 1]
                close = np.abs(given - column) <= COPY_TOLERANCE * np.maximum(1.0, np.abs(column))
                match = np.flatnonzero(np.all(close, axis=0))
                if len(match):
                    copied.append((i, int(match[0])))
        return cls(cameras=tuple(cameras), state_dim=int(states.shape[1]), given_key=given_key if given_dim else None,
                   given_dim=given_dim, periodic=tuple(periodic), copied=tuple(copied), unused=tuple(unused), **sizes)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StateEstimatorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("reads_given", True)  # saved before the option: its MLP read them
        return cls(**values)


class StateEstimator(nn.Module):
    """Flat observations (a dict of batched arrays, images ``(B, H, W, 3)`` uint8) -> the full
    state ``(B, state_dim)`` in the env's units. Normalisation statistics are buffers, saved
    with the weights (set by :meth:`fit_statistics` before training)."""

    def __init__(self, config: StateEstimatorConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList(keypoint_encoder(config.width, config.keypoints, config.stride)
                                      for _ in config.cameras)
        inputs = 2 * config.keypoints * len(config.cameras) + (config.given_dim if config.reads_given else 0)
        self.head = nn.Sequential(nn.Linear(inputs, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden),
                                  nn.ReLU(), nn.Linear(config.hidden, config.output_dim))
        n_linear = len(config.linear_dims)
        self.register_buffer("given_mean", torch.zeros(config.given_dim))
        self.register_buffer("given_std", torch.ones(config.given_dim))
        self.register_buffer("state_mean", torch.zeros(n_linear))
        self.register_buffer("state_std", torch.ones(n_linear))
        if config.unused:  # (checkpoints of estimators without unused entries have no such buffer)
            self.register_buffer("unused_mean", torch.zeros(len(config.unused), dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # -- statistics ------------------------------------------------------------------------
    def fit_statistics(self, observations: Mapping[str, np.ndarray], states: np.ndarray) -> None:
        """Standardisation of the given state entries and of the regressed state entries."""
        c = self.config
        if c.given_key is not None:
            given = np.asarray(observations[c.given_key], np.float64).reshape(len(states), -1)
            self.given_mean.copy_(torch.as_tensor(given.mean(0)))
            self.given_std.copy_(torch.as_tensor(np.maximum(given.std(0), 1e-6)))
        linear = np.asarray(states, np.float64)[:, c.linear_dims]
        self.state_mean.copy_(torch.as_tensor(linear.mean(0)))
        self.state_std.copy_(torch.as_tensor(np.maximum(linear.std(0), 1e-6)))
        if c.unused:
            self.unused_mean.copy_(torch.as_tensor(np.asarray(states, np.float64)[:, list(c.unused)].mean(0)))
        self.fitted.fill_(True)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, observations: Mapping[str, Any]) -> torch.Tensor:
        """``(B, output_dim)``: standardised linear entries, then (sin, cos) of each angle."""
        parts = []
        device = self.state_mean.device
        for camera, encoder in zip(self.config.cameras, self.encoders):
            images = torch.as_tensor(observations[camera]).to(device)  # (B, H, W, 3)
            parts.append(encoder(to_float_image(images.permute(0, 3, 1, 2))))
        if self.config.given_key is not None and self.config.reads_given:
            parts.append((self._given(observations).float() - self.given_mean.float()) / self.given_std.float())
        return self.head(torch.cat(parts, dim=1))

    def _given(self, observations: Mapping[str, Any]) -> torch.Tensor:
        given = torch.as_tensor(observations[self.config.given_key])
        return given.reshape(len(given), -1).to(device=self.state_mean.device, dtype=torch.float64)

    def targets(self, states: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Full states ``(B, state_dim)`` -> what :meth:`forward` regresses ``(B, output_dim)``."""
        states = torch.as_tensor(states, dtype=torch.float64).to(self.state_mean.device)
        c = self.config
        linear = (states[:, c.linear_dims] - self.state_mean) / self.state_std
        angles = states[:, c.periodic_dims]
        return torch.cat([linear, angles.sin(), angles.cos()], dim=1).float()

    def loss(self, observations: Mapping[str, Any], states: np.ndarray,
             entries: Sequence[int] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared error on the regressed targets; with ``entries``, on those state entries'
        targets only (entries regressed as numbers: not copied, unused or angles)."""
        outputs, targets = self(observations), self.targets(states)
        if entries is not None:
            columns = self.output_columns(entries)
            outputs, targets = outputs[:, columns], targets[:, columns]
        return nn.functional.mse_loss(outputs, targets), {}

    def output_columns(self, entries: Sequence[int]) -> list[int]:
        """The columns of :meth:`forward`'s output that regress state ``entries``."""
        linear = self.config.linear_dims
        missing = [i for i in entries if i not in linear]
        if missing or not entries:
            raise ValueError(f"state entries {missing or list(entries)} are not regressed as numbers by this estimator "
                             f"(those are {linear})")
        return [linear.index(i) for i in entries]

    @torch.no_grad()
    def estimate(self, observations: Mapping[str, Any]) -> np.ndarray:
        """Flat observations -> full states ``(B, state_dim)`` float64 in the env's units."""
        c = self.config
        out = self(observations).double()
        n_linear, n_angles = len(c.linear_dims), len(c.periodic_dims)
        states = torch.zeros(len(out), c.state_dim, dtype=torch.float64, device=out.device)
        states[:, c.linear_dims] = out[:, :n_linear] * self.state_std + self.state_mean
        lows = torch.tensor([low for i, low in c.periodic if i in c.periodic_dims], dtype=torch.float64, device=out.device)
        angle = torch.atan2(out[:, n_linear:n_linear + n_angles], out[:, n_linear + n_angles:])
        states[:, c.periodic_dims] = torch.remainder(angle - lows, 2 * np.pi) + lows
        if c.unused:
            states[:, list(c.unused)] = self.unused_mean
        if c.copied:
            given = self._given(observations)
            states[:, c.copied_dims] = given[:, [j for _, j in c.copied]]
        return states.cpu().numpy()


__all__ = ["SpatialSoftmax", "StateEstimator", "StateEstimatorConfig", "keypoint_encoder"]
