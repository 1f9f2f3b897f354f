"""The architecture of a flow-matching policy as plain, JSON-serialisable data.

Batch keys (every trainer and the policy speak this vocabulary)::

    "observation.state"              (B, To, Ds) float    proprioception / low-dim state
    "observation.images.<camera>"    (B, To, C, H, W)     uint8 in [0, 255] or float in [0, 1]
    "observation.depth.<camera>"     (B, To, 1, H, W)     float depth (metres or normalised)
    "action"                         (B, horizon, Da)     the demonstrated action chunk

``To = n_obs_steps``. A spec with ``state_dim = 0`` and no cameras has nothing to condition on
and is refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from il_toolkit.config.dataclass_fields import from_known_fields

STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"  # the simulator's full state: training-time supervision only
ACTION_KEY = "action"
ACTION_PAD_KEY = "action_is_pad"  # (B, H) bool: chunk positions with no label, left out of the loss
ACTION_NOISE_KEY = "action_noise"  # (B, H, Da) normalised: the noise each chunk is coupled to (reflow), else drawn fresh
IMAGE_PREFIX = "observation.images."
DEPTH_PREFIX = "observation.depth."
NORMALIZATION_MODES = ("mean_std", "min_max", "identity")
ACTION_STATISTICS = ("per_position", "per_dimension")
VELOCITY_NETS = ("auto", "mlp", "transformer")
MLP_TIME_EMBEDDINGS = ("sinusoids", "sinusoids_mlp")  # MLPVelocityNet's time input (see its docstring)
DEFAULT_SHORTCUT_EMA_DECAY = 0.0  # the shortcut teacher: the live net (FlowMatchingTrainer.build_teacher)


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def depth_key(camera: str) -> str:
    return DEPTH_PREFIX + camera


def shortcut_step_size_problem(step_size: float, shortcut_steps: int) -> str | None:
    """What is wrong with telling a model trained with ``shortcut_steps`` the ODE step size ``step_size`` at
    inference (the ``shortcut_step_size`` inference option), or ``None``."""
    if not shortcut_steps:
        return ("shortcut_step_size is for shortcut models (trained with shortcut_steps > 0, train flow "
                "--shortcut_steps); this model was trained with plain flow matching")
    if not 0.0 <= float(step_size) <= 1.0:
        return f"shortcut_step_size is a share of the path from noise to action, in [0, 1]; got {step_size}"
    return None


def shortcut_settings_problem(steps: int, fraction: float, ema_decay: float = DEFAULT_SHORTCUT_EMA_DECAY) -> str | None:
    """What is wrong with ``shortcut_steps`` / ``shortcut_fraction`` / ``shortcut_ema_decay``, or ``None``; each
    message starts with the field's name, so that a command line can prefix its ``--``."""
    if steps != 0 and (steps < 2 or steps & (steps - 1)):
        return (f"shortcut_steps must be 0 (plain flow matching) or a power of two such as 8 or 128 (the smallest "
                f"step a shortcut model learns is 1/shortcut_steps), got {steps}")
    if not 0.0 < fraction < 1.0:
        return f"shortcut_fraction is the share of a batch on self-consistency targets, in (0, 1); got {fraction}"
    if not 0.0 <= ema_decay < 1.0:
        return (f"shortcut_ema_decay is the decay of the moving average of the velocity net that makes the "
                f"self-consistency targets, in [0, 1) (0: the model itself); got {ema_decay}")
    return None


def default_expert_width(mlp_width: int, n_experts: int) -> int:
    """``mlp_width / sqrt(n_experts)`` rounded to a multiple of 8 (at least 8): a mixture of ``n_experts`` such
    nets has as many hidden-layer weights as one net of ``mlp_width`` (256 and 4 experts: 128)."""
    return max(8, 8 * round(mlp_width / math.sqrt(max(1, n_experts)) / 8))


@dataclass(frozen=True)
class FlowModelSpec:
    """Shapes and sizes of every component; stored in the checkpoint's ``config.json``.

    ``cameras``/``depth_cameras`` name the RGB and depth inputs (``depth_cameras`` entries
    are read from ``observation.depth.<name>``). ``image_size`` is ``(H, W)`` in pixels for
    every visual input. ``normalization`` is how state and actions are scaled
    (``"mean_std"``, ``"min_max"`` to [-1, 1], or ``"identity"``). ``action_statistics``:
    ``"per_dimension"`` scales every position of the action chunk alike (the default, and how
    policies saved before the option were scaled), ``"per_position"`` each position by its own
    statistics. With actions relative to the state a chunk is planned from, its far positions
    spread several times wider than its first (PushT: 38 against 91 pixels), and one scale for all
    of them squeezes the actions executed first: on PushT with chunks of 16, per position lifted
    success from 33-79% to 44-93% (executing 8 to 1 actions per chunk); on ALOHA transfer it gave
    84% against 92% (one training seed), so it is not yet the default (benchmarks/flow_state.py).
    ``shortcut_steps``: 0 trains plain flow matching; a power of two ``M`` (128 in the paper)
    trains a shortcut model (Frans et al. 2024, "One Step Diffusion via Shortcut Models"): the
    velocity net is also told the ODE step size and learns, from its own pairs of half steps, to
    take steps as large as the whole path, so that 1 or 2 Euler steps can replace 10;
    ``shortcut_fraction`` of every batch trains that self-consistency, the rest plain flow matching.
    The half steps those targets come from are taken by the net itself (``shortcut_ema_decay=0``) or by
    an exponential moving average of it with that decay, which kept ``shortcut_fraction=0.75`` trainable on
    ALOHA transfer but cost one-step success elsewhere (see ``FlowMatchingTrainer.build_teacher``).
    ``mlp_time_embedding``: how the MLP velocity net takes the flow time: ``"sinusoids_mlp"`` (the default) passes
    its ``d_model`` sinusoids through a Linear-SiLU-Linear MLP, as the transformer does; ``"sinusoids"`` feeds them
    to the net's first layer as they are: a PushT training step ~13% cheaper and as good on PushT state, but on
    ALOHA's chunks (one training seed) insertion reached 18 / 84.5% at one / two Euler steps against 41 / 89.5%,
    transfer 20.5 / 91.5% against 44 / 95.5%. ``train flow`` chooses by the horizon
    (``defaults.default_mlp_time_embedding``).
    ``mlp_expert_width``: the width of each expert of a mixture of MLP velocity nets (the variational trainer's
    decoder); 0: ``mlp_width / sqrt(n_experts)`` rounded to a multiple of 8, so that the mixture's hidden layers cost
    what one net's do (PushT state, four experts of 128 against 256: a training step 1.6x cheaper, timed ad hoc; success and
    mode shares in benchmarks/flow_state.py and flow_two_modes.py). Specs saved before the field had experts as
    wide as the net, and load so.
    """

    action_dim: int
    horizon: int = 16
    n_obs_steps: int = 2
    state_dim: int = 0
    cameras: tuple[str, ...] = ()
    depth_cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (96, 96)
    image_channels: int = 3
    image_token_grid: int = 2
    d_model: int = 128
    n_heads: int = 4
    embedder_layers: int = 2
    decoder_layers: int = 2
    ff_mult: int = 4
    dropout: float = 0.0
    normalization: str = "mean_std"
    action_statistics: str = "per_dimension"
    codebook_size: int = 16
    n_experts: int = 4
    mi_dim: int = 64
    velocity_net: str = "auto"
    mlp_width: int = 0
    mlp_layers: int = 3
    mlp_time_embedding: str = "sinusoids_mlp"
    mlp_expert_width: int = 0
    shortcut_steps: int = 0
    shortcut_fraction: float = 0.25
    shortcut_ema_decay: float = DEFAULT_SHORTCUT_EMA_DECAY
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "depth_cameras", tuple(self.depth_cameras))
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        for name, value in (("action_dim", self.action_dim), ("horizon", self.horizon), ("n_obs_steps", self.n_obs_steps)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.state_dim < 0:
            raise ValueError(f"state_dim must be >= 0 (0 = no proprioception), got {self.state_dim}")
        if self.state_dim == 0 and not self.cameras and not self.depth_cameras:
            raise ValueError(
                "the policy has nothing to condition on: set state_dim > 0 (proprioception) or name at least one camera"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if len(set(self.cameras)) != len(self.cameras) or len(set(self.depth_cameras)) != len(self.depth_cameras):
            raise ValueError(f"camera names must be unique, got cameras={self.cameras}, depth_cameras={self.depth_cameras}")
        for name in self.cameras + self.depth_cameras:
            if not name or not name.replace("_", "").isalnum():
                raise ValueError(f"camera names must be alphanumeric (underscores allowed), got {name!r}")
        if self.velocity_net not in VELOCITY_NETS:
            raise ValueError(f"velocity_net must be one of {VELOCITY_NETS}, got {self.velocity_net!r}")
        if self.velocity_net == "auto":
            object.__setattr__(self, "velocity_net", "transformer" if self.cameras or self.depth_cameras else "mlp")
        if self.mlp_width < 0 or self.mlp_layers < 1:
            raise ValueError(f"mlp_width must be >= 0 (0: sized to the chunk) and mlp_layers >= 1, got {self.mlp_width} "
                             f"and {self.mlp_layers}")
        if self.mlp_width == 0:
            object.__setattr__(self, "mlp_width", 1 << (max(256, 4 * self.horizon * self.action_dim) - 1).bit_length())
        if self.mlp_expert_width < 0:
            raise ValueError(f"mlp_expert_width must be >= 0 (0: mlp_width / sqrt(n_experts)), got {self.mlp_expert_width}")
        if self.mlp_expert_width == 0:
            object.__setattr__(self, "mlp_expert_width", default_expert_width(self.mlp_width, self.n_experts))
        if self.mlp_time_embedding not in MLP_TIME_EMBEDDINGS:
            raise ValueError(f"mlp_time_embedding must be one of {MLP_TIME_EMBEDDINGS}, got {self.mlp_time_embedding!r}")
        if self.normalization not in NORMALIZATION_MODES:
            raise ValueError(f"normalization must be one of {NORMALIZATION_MODES}, got {self.normalization!r}")
        if self.action_statistics not in ACTION_STATISTICS:
            raise ValueError(f"action_statistics must be one of {ACTION_STATISTICS}, got {self.action_statistics!r}")
        problem = shortcut_settings_problem(self.shortcut_steps, self.shortcut_fraction, self.shortcut_ema_decay)
        if problem:
            raise ValueError(problem)
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be (H, W) with both >= 8 pixels, got {self.image_size}")

    @property
    def visual_inputs(self) -> list[tuple[str, str, int]]:
        """``(module_name, batch_key, channels)`` for every camera and depth input, in order."""
        rgb = [(f"backbone_{c}", image_key(c), self.image_channels) for c in self.cameras]
        depth = [(f"depth_backbone_{c}", depth_key(c), 1) for c in self.depth_cameras]
        return rgb + depth

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cameras"] = list(self.cameras)
        data["depth_cameras"] = list(self.depth_cameras)
        data["image_size"] = list(self.image_size)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FlowModelSpec":
        # specs saved before velocity_net existed were all transformers, before mlp_time_embedding MLP velocity
        # nets passed the time's sinusoids through an MLP (whatever the default becomes), and before
        # mlp_expert_width a mixture's experts were as wide as the net
        legacy = {"velocity_net": "transformer", "mlp_time_embedding": "sinusoids_mlp",
                  "mlp_expert_width": data.get("mlp_width", 0)}
        return from_known_fields(cls, {**legacy, **data})

    def replace(self, **changes: Any) -> "FlowModelSpec":
        return dataclasses.replace(self, **changes)
