"""Vision-language-action policies: :class:`VLAModel` (the user guide's ``VLAModel(vision_model_name=...,
llm_model_name=..., action_dim=...)``), a toolkit :class:`~il_toolkit.policies.Policy`.

Architecture (pi0-style, small)::

    instruction --tokenizer--> text embeddings (L, H) ---------------------------+
    camera c image (C, H, W) --vision--> tokens (n, F) --Linear--> (n, H) + cam_c -+--> language model
    state (Ds) --features--normalise--Linear--> (1, H) --------------------------+    (causal; text first)
                                                                                          |
          hidden states of the camera and state tokens (they have read the instruction) --+--> memory (M, d)
    action head: "flow" (default): velocity v(x_t, t | memory) of a chunk (chunk_size, Da),
                 sampled by integrating from noise (il_toolkit.model.flow); "regression": the chunk directly.
                 The network is one of the flow family's velocity networks:
                 velocity_net="transformer" (the default with cameras) cross-attends to the memory tokens;
                 velocity_net="mlp" (the default without) reads one summary of them (the last token,
                 which has read everything before it, beside their mean) through the MLP velocity net.

Batches use the LeRobot keys of :mod:`il_toolkit.train.datasets.lerobot_dataset`:
``"observation.images.<camera>"`` ``(B, 1, C, H, W)`` uint8, ``"observation.state"`` ``(B, 1, Ds)``,
``"action"`` ``(B, chunk_size, Da)``, ``"action_is_pad"`` ``(B, chunk_size)``, ``"task"`` (B strings).
Actions and states are normalised inside the model (statistics saved with the weights). With
``VLAConfig.features`` (a :class:`~il_toolkit.features.state.StateFeatures`, what every other
learner of the env uses: ``il_toolkit.policies.flow_policy.default_state_features(env)``) the state
is seen through that pipeline (angles as sine/cosine, the task frame) and action chunks are
regressed as its action codec encodes them relative to the chunk's first state; the raw
``observation.state`` stays what batches and observations carry.

As a policy it keeps an action queue: it plans a chunk, executes ``n_action_steps`` of it,
then plans again; ``reset()`` empties the queue. It acts on the instruction set with
:meth:`VLAModel.set_instruction` (default: the first one it was trained on); an instruction it
never saw in training still produces actions and is logged once.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from il_toolkit.config.dataclass_fields import from_known_fields
from il_toolkit.features.goals import env_goal_frame, get_goal_frame, goal_table
from il_toolkit.features.state import StateFeatures
from il_toolkit.features.task_slots import SlottedFeatures
from il_toolkit.features.observations import batch_from_observations
from il_toolkit.model import flow
from il_toolkit.model.components import BatchError
from il_toolkit.model.normalizer import Normalizer
from il_toolkit.model.pretrained import BUILTIN, OfflineModelError, build_language, build_vision
from il_toolkit.model.spec import ACTION_KEY, ENV_STATE_KEY, IMAGE_PREFIX, STATE_KEY
from il_toolkit.model.state_estimator import StateEstimator, StateEstimatorConfig
from il_toolkit.model.mlp_velocity import MLPVelocityNet
from il_toolkit.model.transformer import ActionDecoder
from il_toolkit.model.vla_goals import VLAGoals, goal_grounding_spec
from il_toolkit.policies.base import BasePolicy
from il_toolkit.policies.checkpoint import CheckpointError
from il_toolkit.policies.spaces import add_batch_axis, check_observation, is_batched

logger = logging.getLogger(__name__)

ACTION_HEADS = ("flow", "regression")
SLOT_TASK_KEY = "slot_task"  # batch key: the task whose slots a sample uses, where it is not its instruction
VELOCITY_NETS = ("transformer", "mlp")
__all__ = ["VLAConfig", "VLAModel", "VLANetwork", "OfflineModelError", "BUILTIN"]


@dataclass(frozen=True)
class VLAConfig:
    """Everything that shapes a :class:`VLAModel`; stored in the checkpoint's ``config.json``.

    ``hidden_size``/``llm_layers``/``n_heads`` size the built-in language model (a pretrained
    one brings its own); ``vision_grid``/``vision_width`` the built-in per-camera CNN
    (``vision_grid**2`` tokens per camera). ``head_dim``/``head_layers`` size the action head;
    ``velocity_net`` picks its network, the flow family's transformer decoder or MLP velocity net
    (``mlp_width`` x ``mlp_layers``); default: the MLP for a model without cameras (on PushT state
    it reached 99% against the transformer's 94%, 1.6x faster), the transformer otherwise.
    ``image_shift`` is the random-shift augmentation in pixels applied in training.
    ``shared_text_cache`` runs each distinct instruction through the language model once per
    batch and shares its keys/values (exact, and much cheaper for byte-level text).
    ``instructions`` lists the instructions seen in training. ``task_slots`` (multi-task
    models, see :mod:`il_toolkit.train.datasets.multitask`) maps an instruction to the
    ``{"state": [start, stop], "action": [start, stop]}`` slots its task owns; the state
    dimensions of other tasks are zeroed after normalisation. A task's entry may also carry
    ``"features"`` (its env's pipeline, ``StateFeatures.to_json()``: the task's slot is read
    through it, see :class:`~il_toolkit.features.task_slots.SlottedFeatures`),
    ``"horizon"`` (how many of a chunk's actions the task learns; the rest of its chunk does not
    count in the loss, so a task that acts best step by step, such as PushT, need not predict 16)
    and ``"n_action_steps"`` (actions executed per plan when acting in that task's env, at most
    its horizon).
    ``features``: the state's feature pipeline (``StateFeatures.to_json()``; None: the raw
    state), single-task models.
    ``state_estimator`` (``StateEstimatorConfig.to_json()``, cameras named by their batch keys):
    the cameras are read by a keypoint state estimator instead of becoming tokens; it estimates the
    env's full state (``state_dim`` entries, the observation's own ``observation.state`` copied in
    where it gives them), and the state token reads that estimate through ``features``. In training
    the estimator regresses the simulator's recorded state (``observation.environment_state``) on
    the first ``estimator_batch`` samples of each batch, and the action head reads the recorded
    state itself; acting reads the cameras and ``observation.state`` alone. (On PushT from pixels
    camera tokens learned nothing in CPU minutes; see :mod:`il_toolkit.model.state_estimator`.)
    ``goal_grounding`` (:func:`~il_toolkit.model.vla_goals.goal_grounding_spec`): tasks whose
    instruction names the goal; a grounder inside the model picks the goal and the state and actions
    are read in its frame (:mod:`il_toolkit.model.vla_goals`; trained on the goals recorded in
    ``observation.environment_state``, the first ``grounder_batch`` instructions of each batch).
    ``grounded_action_text``: with grounding, whether the action path also reads the instruction
    (default off: it reads an empty one, the goal being in the state's frame already; on the
    two-target PushT that took the grounded VLA from 74% / 78% to 86% / 84% and halved its step time).
    """

    action_dim: int
    vision_model_name: str = BUILTIN
    llm_model_name: str = BUILTIN
    cameras: tuple[str, ...] = ("top",)
    state_dim: int = 0
    image_size: tuple[int, int] = (96, 96)
    chunk_size: int = 10
    n_action_steps: int | None = None
    action_head: str = "flow"
    hidden_size: int = 128
    llm_layers: int = 2
    n_heads: int = 4
    vision_grid: int = 4
    vision_width: int = 32
    head_dim: int = 128
    head_layers: int = 2
    velocity_net: str | None = None
    mlp_width: int = 256
    mlp_layers: int = 3
    max_text_tokens: int = 64
    normalization: str = "min_max"
    freeze_vision: bool = False
    freeze_llm: bool = False
    image_shift: int = 4
    flow_steps: int = 10
    solver: str = "euler"
    time_alpha: float = 1.0
    time_beta: float = 1.5
    shared_text_cache: bool = True
    instructions: tuple[str, ...] = ()
    task_slots: dict[str, Any] = field(default_factory=dict)
    pretrained: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] | None = None
    state_estimator: dict[str, Any] | None = None
    estimator_batch: int = 64
    goal_grounding: dict[str, Any] | None = None
    grounder_batch: int = 32
    grounded_action_text: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cameras", tuple(self.cameras))
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        object.__setattr__(self, "instructions", tuple(self.instructions))
        if int(self.action_dim) < 1:
            raise ValueError(f"action_dim must be >= 1, got {self.action_dim}")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.n_action_steps is not None and not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(f"n_action_steps must be in [1, chunk_size={self.chunk_size}], got {self.n_action_steps}")
        if self.action_head not in ACTION_HEADS:
            raise ValueError(f"action_head must be one of {ACTION_HEADS}, got {self.action_head!r}")
        if self.velocity_net is None:
            object.__setattr__(self, "velocity_net", "transformer" if self.camera_tokens else "mlp")
        if self.velocity_net not in VELOCITY_NETS:
            raise ValueError(f"velocity_net must be one of {VELOCITY_NETS}, got {self.velocity_net!r}")
        if not self.cameras and self.state_dim <= 0:
            raise ValueError("a VLA needs at least one camera (cameras=('top',)) or a state input (state_dim > 0)")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"camera names must be unique, got {self.cameras}")
        if self.hidden_size % self.n_heads or self.head_dim % self.n_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) and head_dim ({self.head_dim}) must be divisible by n_heads ({self.n_heads})")
        if self.solver not in flow.SOLVERS:
            raise ValueError(f"unknown ODE solver {self.solver!r}; choose one of {', '.join(flow.SOLVERS)}")
        if self.features is not None:
            pipeline = StateFeatures.from_json(self.features)
            if self.task_slots:
                raise ValueError("a multi-task VLA (task_slots) reads each task's state through that task's own "
                                 "pipeline: give task_slots[task]['features'], not features")
            pipeline.check_fits(self.state_dim, int(self.action_dim), "this VLA's config")
        for task, slots in self.task_slots.items():
            (s0, s1), (a0, a1) = slots["state"], slots["action"]
            if not (0 <= s0 <= s1 <= self.state_dim and 0 <= a0 < a1 <= self.action_dim):
                raise ValueError(f"task_slots[{task!r}] = {slots} does not fit state_dim={self.state_dim}, "
                                 f"action_dim={self.action_dim}")
            horizon = self.task_horizon(task)
            if not 1 <= horizon <= self.chunk_size:
                raise ValueError(f"task_slots[{task!r}]['horizon'] must be in [1, chunk_size={self.chunk_size}], got {horizon}")
            steps = slots.get("n_action_steps")
            if steps is not None and not 1 <= steps <= horizon:
                raise ValueError(f"task_slots[{task!r}]['n_action_steps'] must be in [1, the task's horizon={horizon}], "
                                 f"got {steps}")
        if self.task_slots:
            SlottedFeatures(self.task_slots)  # each task's pipeline fits its slots
        if self.state_estimator is not None:
            self._check_state_estimator(StateEstimatorConfig.from_json(self.state_estimator))
        if self.goal_grounding is not None:
            frame_dim = get_goal_frame(self.goal_grounding["frame"]).state_dim
            if self.task_slots or self.state_estimator is not None or self.state_dim != frame_dim or self.grounder_batch < 1:
                raise ValueError(f"goal grounding reads one task's observed state ({frame_dim} entries for the "
                                 f"{self.goal_grounding['frame']!r} frame, got state_dim={self.state_dim}) in its goal's "
                                 "frame: no task_slots, no state estimator, and grounder_batch >= 1 "
                                 f"(got {self.grounder_batch})")

    def _check_state_estimator(self, estimator: StateEstimatorConfig) -> None:
        keys = sorted(IMAGE_PREFIX + camera for camera in self.cameras)
        if sorted(estimator.cameras) != keys or not keys:
            raise ValueError(f"the state estimator reads {sorted(estimator.cameras)}, but this VLA's cameras are {keys}: "
                             "build it with VLAModel.for_dataset(..., estimate_state=True)")
        if estimator.state_dim != self.state_dim:
            raise ValueError(f"the state estimator estimates {estimator.state_dim} state entries but state_dim is "
                             f"{self.state_dim}: with an estimator, state_dim is the full state's size")
        if estimator.given_key not in (None, STATE_KEY):
            raise ValueError(f"the state estimator's given entries must come from {STATE_KEY!r}, not {estimator.given_key!r}")
        if self.vision_model_name != BUILTIN or self.task_slots:
            raise ValueError("a VLA whose cameras are read by a state estimator has no vision backbone and one task: "
                             f"leave vision_model_name at {BUILTIN!r} and task_slots empty")
        if self.estimator_batch < 1:
            raise ValueError(f"estimator_batch must be >= 1, got {self.estimator_batch}")

    @property
    def camera_tokens(self) -> bool:
        """Whether the cameras become language-model tokens (not with a state estimator)."""
        return bool(self.cameras) and self.state_estimator is None

    @property
    def actions_per_plan(self) -> int:
        return self.n_action_steps or self.chunk_size

    def task_horizon(self, task: str | None) -> int:
        """How many of a chunk's actions ``task`` learns (``task_slots[task]["horizon"]``; the whole
        chunk for a task without one, an unknown task or None)."""
        return (self.task_slots.get(task) or {}).get("horizon") or self.chunk_size

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(cameras=list(self.cameras), image_size=list(self.image_size), instructions=list(self.instructions))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "VLAConfig":
        return from_known_fields(cls, {"velocity_net": "transformer", **data})  # saved before the option: a transformer

    def replace(self, **changes: Any) -> "VLAConfig":
        return dataclasses.replace(self, **changes)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ's augmentation: pad ``(B, C, H, W)`` by ``pad`` (edge pixels) and crop back at a
    random integer offset per sample."""
    if pad <= 0:
        return images
    b, _, h, w = images.shape
    padded = nn.functional.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator)
    rows = (offsets[:, 0, None] + torch.arange(h)[None])  # (B, H)
    cols = (offsets[:, 1, None] + torch.arange(w)[None])  # (B, W)
    index = torch.arange(b)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


class VLANetwork(nn.Module):
    """The trainable part of a :class:`VLAModel` (see the module docstring)."""

    def __init__(self, config: VLAConfig, *, load_pretrained: bool = True) -> None:
        super().__init__()
        self.config = config
        stored = config.pretrained if not load_pretrained else {}
        self.vision, vision_info = build_vision(
            config.vision_model_name, config.cameras if config.camera_tokens else (), out_dim=config.hidden_size,
            grid=config.vision_grid, width=config.vision_width, freeze=config.freeze_vision, stored=stored.get("vision"),
        )
        self.estimator = (StateEstimator(StateEstimatorConfig.from_json(config.state_estimator))
                          if config.state_estimator is not None else None)
        self.goals = VLAGoals(config.goal_grounding) if config.goal_grounding is not None else None
        self.llm, self.tokenizer, llm_info = build_language(
            config.llm_model_name, hidden_size=config.hidden_size, n_layers=config.llm_layers, n_heads=config.n_heads,
            freeze=config.freeze_llm, stored=stored.get("llm"),
        )
        self.pretrained_info = {k: v for k, v in (("vision", vision_info), ("llm", llm_info)) if v is not None}
        width = int(self.llm.config.hidden_size)
        self.vision_proj = nn.Linear(self.vision.out_dim, width)
        self.camera_embed = nn.Parameter(torch.randn(max(len(config.cameras), 1), width) * 0.02)
        self.features = StateFeatures.from_json(config.features) if config.features is not None else None
        slotted = any(slots.get("features") for slots in config.task_slots.values())
        self.slot_features = SlottedFeatures(config.task_slots) if slotted else None
        state_width = (self.features.n_features if self.features is not None else
                       self.slot_features.n_features if self.slot_features is not None else config.state_dim)
        self.state_proj = nn.Linear(state_width, width) if config.state_dim > 0 else None
        self.memory_proj = nn.Sequential(nn.Linear(width, config.head_dim), nn.LayerNorm(config.head_dim))
        if config.velocity_net == "mlp":
            self.summary = nn.Linear(2 * config.head_dim, config.head_dim)
            self.head = MLPVelocityNet(config.action_dim, config.chunk_size, config.head_dim, config.mlp_width,
                                       config.mlp_layers)
        else:
            self.head = ActionDecoder(config.action_dim, config.chunk_size, config.head_dim, config.n_heads,
                                      config.head_layers)
        self.normalizer = Normalizer(state_width if config.state_dim else 0, config.action_dim, config.normalization)
        self.time_distribution = flow.TimeDistribution("beta", config.time_alpha, config.time_beta)
        self._token_cache: dict[tuple[str, ...], dict[str, torch.Tensor]] = {}

    # -- inputs --------------------------------------------------------------------------
    def check_batch(self, batch: Mapping[str, Any]) -> None:
        """Raise :class:`BatchError` when the batch's cameras or state do not match the model's."""
        cams = sorted(k[len(IMAGE_PREFIX):] for k in batch if k.startswith(IMAGE_PREFIX))
        if sorted(self.config.cameras) != cams:
            raise BatchError(
                f"the batch has cameras {cams} but this VLA was built for cameras {sorted(self.config.cameras)}: build "
                f"VLAModel(cameras={tuple(cams)}, ...) for this dataset, or rename the dataset's cameras to match"
            )
        given = self.estimator.config.given_dim if self.estimator is not None else self.config.state_dim
        if given and STATE_KEY not in batch:
            raise BatchError(f"the batch has no {STATE_KEY!r}, but this VLA reads a state of dimension {given}")

    def _tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        key = tuple(texts)
        if key not in self._token_cache:
            if len(self._token_cache) > 64:
                self._token_cache.clear()
            self._token_cache[key] = self.tokenizer(list(texts), max_length=self.config.max_text_tokens)
        return self._token_cache[key]

    @staticmethod
    def _last_step(value: torch.Tensor, event_dims: int, key: str) -> torch.Tensor:
        if value.dim() == event_dims + 2:
            return value[:, -1]  # (B, To, ...) -> the newest observation
        if value.dim() == event_dims + 1:
            return value
        raise BatchError(f"batch[{key!r}] has shape {tuple(value.shape)}; expected (B, To, ...) or (B, ...)")

    def raw_state(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """The newest ``observation.state`` of each sample ``(B, Ds)`` in env units (None without a
        state input); with a state estimator, the full state it estimates from the observation."""
        if self.state_proj is None:
            return None
        if self.estimator is not None:
            estimate = self.estimator.estimate(self._estimator_inputs(batch))
            return torch.as_tensor(estimate, dtype=torch.float32, device=self.camera_embed.device)
        return self._last_step(torch.as_tensor(batch[STATE_KEY]), 1, STATE_KEY).float()

    def training_state(self, batch: Mapping[str, Any]) -> torch.Tensor | None:
        """The state the action head learns from: :meth:`raw_state`, or with a state estimator
        the simulator's recorded state ``observation.environment_state`` ``(B, Ds)``."""
        return self.recorded_state(batch) if self.estimator is not None else self.raw_state(batch)

    def recorded_state(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The simulator's state recorded beside each observation ``(B, D)``: training-time supervision
        of the state estimator and of goal grounding."""
        if ENV_STATE_KEY not in batch:
            raise BatchError(
                f"this VLA learns from the simulator's state recorded beside the observations ({ENV_STATE_KEY!r}: its "
                "state estimator or its goal grounding): load the dataset with environment_state=True (collect records "
                "it in envs whose observation is not the whole state, such as camera observations or the two-target "
                "PushT)")
        return self._last_step(torch.as_tensor(batch[ENV_STATE_KEY]), 1, ENV_STATE_KEY).float().to(self.camera_embed.device)

    def _estimator_inputs(self, batch: Mapping[str, Any], rows: int | None = None) -> dict[str, torch.Tensor]:
        """The estimator's view of the batch (its first ``rows`` samples): images ``(B, H, W, 3)``
        and the observation's own state ``(B, Dg)``."""
        config = self.estimator.config
        keys = list(config.cameras) + ([config.given_key] if config.given_key is not None else [])
        inputs = {}
        for key in keys:
            value = self._last_step(torch.as_tensor(batch[key]), 3 if key in config.cameras else 1, key)[:rows]
            inputs[key] = value.permute(0, 2, 3, 1) if key in config.cameras else value
        return inputs

    def estimator_loss(self, batch: Mapping[str, Any], states: torch.Tensor) -> torch.Tensor:
        """The state estimator's regression loss on the batch's first ``estimator_batch`` samples."""
        rows = self.config.estimator_batch
        return self.estimator.loss(self._estimator_inputs(batch, rows), states[:rows].double())[0]

    def state_features(self, raw: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Raw states ``(B, Ds)`` of samples with instructions ``texts`` -> what the state token reads,
        ``(B, F)`` (the feature pipeline's, each task's in its slot, or the raw state)."""
        if self.slot_features is not None:
            return torch.as_tensor(self.slot_features.features(raw.cpu().numpy(), texts), dtype=torch.float32)
        if self.features is None:
            return raw
        return torch.as_tensor(self.features.features(raw.cpu().numpy()), dtype=torch.float32)

    def encode_actions(self, raw: torch.Tensor | None, actions: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Chunks ``(B, H, Da)`` in env units -> as regressed (the pipeline's action codec, relative to ``raw``)."""
        return self._code_actions(raw, actions, texts, encode=True)

    def decode_actions(self, raw: torch.Tensor | None, encoded: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self._code_actions(raw, encoded, texts, encode=False)

    def _code_actions(self, raw: torch.Tensor | None, values: torch.Tensor, texts: Sequence[str], *,
                      encode: bool) -> torch.Tensor:
        if raw is None or (self.features is None and self.slot_features is None):
            return values
        state, array = raw.cpu().numpy(), values.detach().cpu().numpy()
        if self.slot_features is not None:
            code = self.slot_features.encode_actions if encode else self.slot_features.decode_actions
            out = code(state, array, texts)
        else:
            out = (self.features.encode_actions if encode else self.features.decode_actions)(state, array)
        return torch.as_tensor(out, dtype=torch.float32, device=values.device)

    def encode(self, batch: Mapping[str, Any], state: torch.Tensor | None = None) -> torch.Tensor:
        """Observation + instruction -> memory ``(B, M, head_dim)`` for the action head,
        ``M = n_cameras * vision_grid**2 + (1 if state)`` (camera tokens only: none with a state
        estimator; ``velocity_net="mlp"``: ``M = 1``, the last token beside the mean of all, mapped
        back to ``head_dim``). ``state``: the raw state ``(B, Ds)`` to read (default :meth:`raw_state`)."""
        self.check_batch(batch)
        device = self.camera_embed.device
        tokens: list[torch.Tensor] = []
        for i, camera in enumerate(self.config.cameras if self.config.camera_tokens else ()):
            key = IMAGE_PREFIX + camera
            images = self._last_step(torch.as_tensor(batch[key]), 3, key).to(device)
            if self.training and self.config.image_shift:
                images = random_shift(images.float() if images.dtype != torch.uint8 else images, self.config.image_shift)
            tokens.append(self.vision_proj(self.vision(camera, images)) + self.camera_embed[i])
        state = self.raw_state(batch) if state is None else state
        texts = self._instructions(batch.get("task"), tokens[0].shape[0] if tokens else state.shape[0])
        owners = self._slot_owners(batch, texts)
        if state is not None:
            state = self.normalizer.normalize_state(self.state_features(state, owners).to(device))
            if self.config.task_slots:
                state = state * self._owned_state(owners).to(device)
            tokens.append(self.state_proj(state)[:, None, :])
        memory = self.memory_proj(self._read(texts, torch.cat(tokens, dim=1)))
        if self.config.velocity_net == "mlp":
            return self.summary(torch.cat([memory[:, -1], memory.mean(dim=1)], dim=-1))[:, None, :]
        return memory

    def _action_batch(self, batch: Mapping[str, Any]) -> Mapping[str, Any]:
        """What the action path reads: the batch, or with goal grounding and ``grounded_action_text``
        off, the batch with an empty instruction (the goal is in the state's frame already)."""
        if self.goals is None or self.config.grounded_action_text:
            return batch
        return {**batch, "task": ""}

    def _slot_owners(self, batch: Mapping[str, Any], texts: list[str]) -> list[str]:
        """The task whose slots, pipeline and horizon each sample uses: ``batch["slot_task"]`` where a
        task view set it (it acts in its task's env whatever the instruction), else the instruction."""
        owners = batch.get(SLOT_TASK_KEY)
        return list(owners) if owners is not None else texts

    @staticmethod
    def _instructions(texts: Any, batch_size: int) -> list[str]:
        """``batch["task"]`` as one instruction per sample (a single string or None: for all)."""
        if texts is None or isinstance(texts, str):
            return [texts or ""] * batch_size
        if len(texts) != batch_size:
            raise BatchError(f"batch['task'] has {len(texts)} instructions for {batch_size} samples")
        return list(texts)

    def _owned_state(self, texts: list[str]) -> torch.Tensor:
        """``(B, F)`` 1 where the sample's task owns the state (or feature) dimension; an
        instruction with no slots (one the model never saw) keeps every dimension."""
        if self.slot_features is not None:
            return torch.as_tensor(self.slot_features.owned(texts))
        mask = torch.ones(len(texts), self.config.state_dim)
        for row, text in enumerate(texts):
            slots = self.config.task_slots.get(text)
            if slots is not None:
                s0, s1 = slots["state"]
                mask[row] = 0.0
                mask[row, s0:s1] = 1.0
        return mask

    def _within_horizon(self, texts: list[str]) -> torch.Tensor:
        """``(B, chunk_size)`` 1 for the chunk steps each sample's task learns (its ``horizon``)."""
        steps = torch.arange(self.config.chunk_size)
        horizons = torch.tensor([self.config.task_horizon(text) for text in texts])
        return (steps[None, :] < horizons[:, None]).float()

    def _read(self, texts: list[str], prefix: torch.Tensor) -> torch.Tensor:
        """Language-model hidden states of the observation tokens ``prefix (B, P, H)`` placed
        after their instruction. The text comes first and attention is causal, so the text's
        keys and values depend only on the instruction: they are computed once per distinct
        instruction and shared through the KV cache (``shared_text_cache``), which gives the
        same result as running every full sequence (see the tests) at a fraction of the cost."""
        device = prefix.device
        unique = sorted(set(texts))
        if self.config.shared_text_cache and len(unique) < len(texts):
            text = self._tokens(unique)
            ids, text_mask = text["input_ids"].to(device), text["attention_mask"].to(device)
            embeds = self.llm.get_input_embeddings()(ids).to(prefix.dtype)
            cache = self.llm(inputs_embeds=embeds, attention_mask=text_mask, use_cache=True).past_key_values
            rows = torch.tensor([unique.index(t) for t in texts], device=device)
            cache.batch_select_indices(rows)
            mask = torch.cat([text_mask[rows], torch.ones(prefix.shape[:2], dtype=text_mask.dtype, device=device)], dim=1)
            return self.llm(inputs_embeds=prefix, attention_mask=mask, past_key_values=cache, use_cache=True).last_hidden_state
        text = self._tokens(texts)
        ids, text_mask = text["input_ids"].to(device), text["attention_mask"].to(device)
        sequence = torch.cat([self.llm.get_input_embeddings()(ids).to(prefix.dtype), prefix], dim=1)
        mask = torch.cat([text_mask, torch.ones(prefix.shape[:2], dtype=text_mask.dtype, device=device)], dim=1)
        hidden = self.llm(inputs_embeds=sequence, attention_mask=mask, use_cache=False).last_hidden_state
        return hidden[:, ids.shape[1]:]

    # -- training ------------------------------------------------------------------------
    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked MSE of the flow velocity (or of the chunk itself for ``"regression"``), in
        normalised action units; padded steps (``action_is_pad``) and other tasks' action
        dimensions (``action_dim_is_pad``, multi-task batches) do not count, and an optional
        ``batch["weight"]`` ``(B,)`` scales each sample's terms."""
        actions = torch.as_tensor(batch[ACTION_KEY]).float().to(self.camera_embed.device)
        if actions.dim() != 3 or actions.shape[1:] != (self.config.chunk_size, self.config.action_dim):
            raise BatchError(
                f"batch['action'] has shape {tuple(actions.shape)}; this VLA predicts chunks of "
                f"(B, chunk_size={self.config.chunk_size}, action_dim={self.config.action_dim}): build the dataset with "
                f"chunk_size={self.config.chunk_size}"
            )
        self.check_batch(batch)
        raw = self.training_state(batch)
        texts = self._slot_owners(batch, self._instructions(batch.get("task"), len(actions)))
        goals = self.goals.recorded(self.recorded_state(batch)) if self.goals is not None else None
        if goals is not None:
            raw, actions = self.goals.states_to_frame(raw, goals), self.goals.actions_to_frame(actions, goals)
        memory = self.encode(self._action_batch(batch), raw)
        x1 = self.normalizer.normalize_action(self.encode_actions(raw, actions, texts))
        dim_pad = batch.get("action_dim_is_pad")  # (B, Da): dimensions another task owns
        owned = None
        if dim_pad is not None:
            owned = (~torch.as_tensor(dim_pad, dtype=torch.bool, device=x1.device)).float()[:, None, :]
            x1 = x1 * owned  # what another task's slots hold must not reach the head's input
        within = self._within_horizon(texts).to(x1.device) if self.config.task_slots else None
        if within is not None:
            x1 = x1 * within[:, :, None]  # nor what lies past the task's horizon
        if self.config.action_head == "flow":
            x0 = torch.randn_like(x1)
            t = self.time_distribution.sample(x1.shape[0], device=x1.device)
            x_t, target = flow.flow_matching_pair(x0, x1, t)
            prediction = self.head(x_t, t, memory)
        else:
            target = x1
            prediction = self._regress(memory)
        squared = (prediction - target).pow(2)
        if owned is None:
            error = squared.mean(-1)  # (B, chunk)
        else:
            error = (squared * owned).sum(-1) / owned.sum(-1).clamp_min(1.0)
        pad = batch.get("action_is_pad")
        keep = torch.ones_like(error) if pad is None else (~torch.as_tensor(pad, dtype=torch.bool, device=error.device)).float()
        if within is not None:
            keep = keep * within
        count = keep.sum().clamp_min(1.0)
        if batch.get("weight") is not None:  # per-sample weights (advantage-weighted updates in VLA GAIL)
            keep = keep * torch.as_tensor(batch["weight"], dtype=error.dtype, device=error.device).reshape(-1, 1)
        loss = (error * keep).sum() / count
        metrics: dict[str, float] = {}
        if self.estimator is not None:
            estimator_loss = self.estimator_loss(batch, raw)
            metrics = {"action_loss": float(loss.detach()), "estimator_loss": float(estimator_loss.detach())}
            loss = loss + estimator_loss
        if goals is not None:
            rows = self.config.grounder_batch
            grounding_loss = self.goals.loss(texts[:rows], goals[:rows])
            metrics = {"action_loss": float(loss.detach()), "grounding_loss": float(grounding_loss.detach())}
            loss = loss + grounding_loss
        return loss, {"loss": float(loss.detach()), **metrics}

    def _regress(self, memory: torch.Tensor) -> torch.Tensor:
        b = memory.shape[0]
        zeros = torch.zeros(b, self.config.chunk_size, self.config.action_dim, device=memory.device)
        return self.head(zeros, torch.zeros(b, device=memory.device), memory)

    @torch.no_grad()
    def sample(self, batch: Mapping[str, Any], *, n_steps: int | None = None, solver: str | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Action chunks ``(B, chunk_size, Da)`` in env units. The memory is computed once and
        reused by every ODE step."""
        self.check_batch(batch)
        raw = self.raw_state(batch)
        goals = None
        if self.goals is not None:
            goals = self.goals.ground(self._instructions(batch.get("task"), raw.shape[0]))
            raw = self.goals.states_to_frame(raw, goals)
        memory = self.encode(self._action_batch(batch), raw)
        texts = self._slot_owners(batch, self._instructions(batch.get("task"), memory.shape[0]))
        if self.config.action_head == "regression":
            x1 = self._regress(memory)
        else:
            shape = (memory.shape[0], self.config.chunk_size, self.config.action_dim)
            x0 = torch.randn(shape, generator=generator, device="cpu").to(memory.device)
            x1 = flow.integrate(lambda x, t: self.head(x, t, memory), x0, n_steps=n_steps or self.config.flow_steps,
                                solver=solver or self.config.solver)
        actions = self.decode_actions(raw, self.normalizer.unnormalize_action(x1), texts)
        return actions if goals is None else self.goals.actions_from_frame(actions, goals)


# -- the policy ----------------------------------------------------------------------------
def flatten_env_observation(observation: Any) -> dict[str, np.ndarray]:
    """A batch of env observations ``(B, ...)`` -> LeRobot batch keys (the dataset's mapping)."""
    return batch_from_observations(observation)


def default_spaces(config: VLAConfig) -> tuple[spaces.Space, spaces.Space]:
    """PushT/ALOHA-style spaces for a model built without an env: ``pixels`` (one camera: a
    Box; several: a Dict) and ``agent_pos``; actions unbounded."""
    h, w = config.image_size
    image = spaces.Box(0, 255, (h, w, 3), np.uint8)
    obs: dict[str, spaces.Space] = {}
    if config.state_dim:
        obs["agent_pos"] = spaces.Box(-np.inf, np.inf, (config.state_dim,), np.float64)
    if config.cameras == ("top",):
        obs["pixels"] = image
    elif config.cameras:
        obs["pixels"] = spaces.Dict({c: image for c in config.cameras})
    return spaces.Dict(obs), spaces.Box(-np.inf, np.inf, (config.action_dim,), np.float32)


class VLAModel(BasePolicy):
    """A vision-language-action policy (the user guide's ``VLAModel``).

    Args:
        vision_model_name: ``"builtin-small"`` (default), a local directory or a cached HF id
            (e.g. ``google/siglip-base-patch16-224`` downloaded elsewhere); never fetched.
        llm_model_name: likewise for the language model (its tokenizer comes from the same place).
        action_dim: action dimension ``Da``.
        cameras: camera names, matching the dataset's ``observation.images.<camera>`` keys.
        state_dim: proprioception dimension (0: none).
        chunk_size: actions per predicted chunk; ``n_action_steps`` of them are executed per plan.
        action_head: ``"flow"`` (flow matching over chunks) or ``"regression"``.
        observation_space / action_space: the env's; PushT-style defaults from the config otherwise.
        instruction: what to act on (default: the first training instruction).
        **fields: any other :class:`VLAConfig` field (sizes, ODE steps, ...).
    """

    checkpoint_kind = "vla"

    def __init__(
        self,
        vision_model_name: str = BUILTIN,
        llm_model_name: str = BUILTIN,
        action_dim: int | None = None,
        *,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        instruction: str | None = None,
        seed: int = 0,
        device: str = "cpu",
        **fields: Any,
    ) -> None:
        if action_dim is None:
            if action_space is None:
                raise ValueError("give action_dim= (or action_space=)")
            action_dim = int(np.prod(action_space.shape))
        config = VLAConfig(action_dim=int(action_dim), vision_model_name=str(vision_model_name),
                           llm_model_name=str(llm_model_name), **fields)
        network = VLANetwork(config, load_pretrained=True)
        network.config = config.replace(pretrained=network.pretrained_info)
        self._setup(network, observation_space, action_space, instruction, seed, device)

    @classmethod
    def for_dataset(cls, dataset: Any, vision_model_name: str = BUILTIN, llm_model_name: str = BUILTIN, *,
                    task_options: Mapping[str, Mapping[str, Any]] | None = None, estimate_state: bool = False,
                    estimator_options: Mapping[str, Any] | None = None, goal_env: Any = None,
                    **fields: Any) -> "VLAModel":
        """A model whose cameras, state and action sizes, chunk size and spaces match a chunked
        dataset (:class:`~il_toolkit.train.datasets.lerobot_dataset.ChunkedEpisodeDataset`); pass
        ``features=default_state_features(env).to_json()`` to see the state as the env's other learners do.
        For a multi-task dataset, ``task_options`` adds to each task's slots (``{instruction:
        {"features": ..., "n_action_steps": ...}}``). ``estimate_state``: the cameras are read by a
        state estimator of the env's full state (see :class:`VLAConfig`), learned from the state the
        dataset recorded (load it with ``environment_state=True``); ``features`` then is the pipeline
        of the env's state observation (``default_state_features(state_env)``).
        ``estimator_options``: :class:`~il_toolkit.model.state_estimator.StateEstimatorConfig`'s
        ``width``, ``keypoints``, ``hidden``, ``stride``. ``goal_env``: the env of a dataset whose
        instructions name the goal (the two-target PushT; the dataset loaded with
        ``environment_state=True``): the model grounds the instruction to one of the recorded goals
        and acts in its frame (:mod:`il_toolkit.model.vla_goals`); ``features`` then is the pipeline
        of the frame's reference env (one-target PushT)."""
        frames = dataset.episodes[0]["frames"]
        cameras = tuple(sorted(k[len(IMAGE_PREFIX):] for k in frames if k.startswith(IMAGE_PREFIX)))
        inferred: dict[str, Any] = {
            "cameras": cameras, "chunk_size": dataset.chunk_size,
            "state_dim": int(frames[STATE_KEY].shape[-1]) if STATE_KEY in frames else 0,
        }
        if cameras:
            inferred["image_size"] = tuple(frames[IMAGE_PREFIX + cameras[0]].shape[-2:])
        if estimate_state:
            inferred.update(cls._estimator_fields(dataset, cameras, fields.get("features"), estimator_options or {}))
        if goal_env is not None:
            inferred["goal_grounding"] = cls._goal_grounding(dataset, goal_env)
        if getattr(dataset, "task_slots", None):
            inferred["task_slots"] = {task: {**slots, **dict((task_options or {}).get(task, {}))}
                                      for task, slots in dataset.task_slots.items()}
        inferred.update(fields)
        return cls(vision_model_name, llm_model_name, action_dim=int(dataset.episodes[0]["actions"].shape[-1]),
                   observation_space=getattr(dataset, "observation_space", None),
                   action_space=getattr(dataset, "action_space", None), **inferred)

    @staticmethod
    def _estimator_fields(dataset: Any, cameras: tuple[str, ...], features: Mapping[str, Any] | None,
                          options: Mapping[str, Any]) -> dict[str, Any]:
        """``state_estimator`` and ``state_dim`` for :meth:`for_dataset`'s ``estimate_state``."""
        frames = dataset.episodes[0]["frames"]
        if not cameras:
            raise ValueError("estimate_state reads the state off camera images, and this dataset has none")
        if ENV_STATE_KEY not in frames:
            raise ValueError(f"estimate_state learns from the recorded state {ENV_STATE_KEY!r}, which this dataset was "
                             "not loaded with: pass environment_state=True to the dataset")
        states = np.concatenate([e["frames"][ENV_STATE_KEY] for e in dataset.episodes]).astype(np.float64)
        given = (np.concatenate([e["frames"][STATE_KEY] for e in dataset.episodes]) if STATE_KEY in frames else None)
        pipeline = StateFeatures.from_json(features) if features is not None else None
        if pipeline is not None and pipeline.obs_dim != states.shape[1]:
            raise ValueError(f"with estimate_state the features read the env's full state ({states.shape[1]} entries), "
                             f"but these read {pipeline.obs_dim}: pass the pipeline of the env's state observation, "
                             "default_state_features(make_env(env_id, obs_type='state'))")
        config = StateEstimatorConfig.infer([IMAGE_PREFIX + c for c in cameras], STATE_KEY if given is not None else None,
                                            given, states, dataset.state_space, pipeline.ignored_obs if pipeline else (),
                                            **options)
        return {"state_estimator": config.to_json(), "state_dim": int(states.shape[1])}

    @staticmethod
    def _goal_grounding(dataset: Any, env: Any) -> dict[str, Any]:
        """``goal_grounding`` for :meth:`for_dataset`'s ``goal_env``: the goals recorded beside the
        dataset's observations and the instructions of its episodes."""
        if ENV_STATE_KEY not in dataset.episodes[0]["frames"]:
            raise ValueError(f"goal grounding learns from the goals recorded in {ENV_STATE_KEY!r}, which this dataset "
                             "was not loaded with: pass environment_state=True to the dataset")
        _, (start, stop) = env_goal_frame(env, "goal grounding")
        goals = np.concatenate([e["frames"][ENV_STATE_KEY][:, start:stop] for e in dataset.episodes]).astype(np.float64)
        instructions = [e.get("task", dataset.instruction) for e in dataset.episodes]
        return goal_grounding_spec(env, goal_table(goals)[0], instructions)

    def _setup(self, network: VLANetwork, observation_space: spaces.Space | None, action_space: spaces.Space | None,
               instruction: str | None, seed: int, device: str, task: str | None = None) -> None:
        self.task = task
        self._slots = None
        if task is not None:
            if task not in network.config.task_slots:
                raise ValueError(f"this VLA has no task {task!r}; its tasks: {sorted(network.config.task_slots)}")
            self._slots = network.config.task_slots[task]
            instruction = task
        horizon = network.config.task_horizon(task)  # never act past what was learned
        self.actions_per_plan = ((self._slots or {}).get("n_action_steps")
                                 or min(network.config.actions_per_plan, horizon))
        defaults = default_spaces(network.config)
        super().__init__(observation_space or defaults[0], action_space or defaults[1])
        a0, a1 = self._slots["action"] if self._slots else (0, network.config.action_dim)
        if self.action_space.shape != (a1 - a0,):
            expected = f"task {task!r}'s action slots [{a0}, {a1})" if task else "action_dim"
            raise ValueError(f"action space {self.action_space.shape} does not match {expected} = {a1 - a0}")
        self.network = network.to(device)
        self.network.eval()
        self.device = device
        self.seen_instructions: set[str] = set(network.config.instructions)
        self._instruction_given = instruction is not None
        self.instruction = instruction if instruction is not None else (network.config.instructions or ("",))[0]
        self._warned: set[str] = set()
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.n_steps = network.config.flow_steps
        self.solver = network.config.solver
        self._queue: np.ndarray | None = None

    @property
    def config(self) -> VLAConfig:
        return self.network.config.replace(instructions=tuple(sorted(self.seen_instructions)))

    @property
    def tasks(self) -> tuple[str, ...]:
        """The instructions of a multi-task model's tasks (empty for a model trained without slots)."""
        return tuple(self.network.config.task_slots)

    def for_task(self, instruction: str, observation_space: spaces.Space | None = None,
                 action_space: spaces.Space | None = None) -> "VLAModel":
        """A multi-task model acting in one task's env: the same network (shared, not copied),
        reading that env's state into the task's slots, answering with the task's action
        dimensions, on the task's instruction. Saving it saves the whole model and the task."""
        view = type(self).__new__(type(self))
        view._setup(self.network, observation_space, action_space, instruction, self.seed, self.device, task=instruction)
        view.seen_instructions = self.seen_instructions
        view.n_steps, view.solver = self.n_steps, self.solver  # inference settings set on the model hold for its tasks
        return view

    # -- what the shared supervised loop needs -----------------------------------------------
    @property
    def model(self) -> nn.Module:
        return self.network

    def parameters(self):
        return (p for p in self.network.parameters() if p.requires_grad)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.network.parameters() if p.requires_grad or not trainable_only)

    def to_batch(self, observations: Any, actions: Any = None) -> dict[str, Any]:
        """LeRobot batches pass through; env observations ``(B, ...)`` map to batch keys."""
        if isinstance(observations, Mapping) and any(str(k).startswith("observation.") for k in observations):
            batch = dict(observations)
        else:
            batch = {k: torch.as_tensor(v) for k, v in flatten_env_observation(observations).items()}
            if self._slots:  # whatever the instruction says, this view's state and actions are its task's
                n = len(next(v for k, v in batch.items() if k.startswith("observation.")))
                batch[SLOT_TASK_KEY] = [self.task] * n
            if self._slots and STATE_KEY in batch:  # a task's env state -> its slots of the long state
                s0, s1 = self._slots["state"]
                state = torch.zeros(*batch[STATE_KEY].shape[:-1], self.network.config.state_dim)
                state[..., s0:s1] = batch[STATE_KEY]
                batch[STATE_KEY] = state
        if actions is not None:
            batch[ACTION_KEY] = torch.as_tensor(np.asarray(actions, dtype=np.float32)) if not torch.is_tensor(actions) else actions
        return batch

    def compute_loss(self, observations: Any, actions: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss on a LeRobot batch (``actions`` from ``batch["action"]`` unless given) or on env
        observations ``(B, ...)`` with action chunks ``(B, chunk_size, Da)``."""
        batch = self.to_batch(observations, actions)
        if "task" not in batch:
            batch["task"] = [self.instruction] * len(batch[ACTION_KEY])
        if torch.is_grad_enabled():
            tasks = [batch["task"]] if isinstance(batch["task"], str) else list(batch["task"])
            self.seen_instructions.update(tasks)
            if not self._instruction_given and self.instruction not in self.seen_instructions:
                self.instruction = tasks[0]  # act on the (first) training instruction by default
        return self.network.compute_loss(batch)

    def fit_normalizer(self, actions: Any, states: Any | None = None, tasks: Sequence[str] | None = None,
                       given: Any | None = None, goals: Any | None = None) -> None:
        """Set action (and state) normalisation from dataset arrays ``(N, ..., Da)``, ``(N, ..., Ds)``.
        With a feature pipeline, ``states`` ``(N, Ds)`` are the raw states and ``actions`` the actions
        ``(N, Da)`` or chunks ``(N, H, Da)`` that start there (:func:`il_toolkit.train.il.vla.chunk_windows`),
        so that the statistics are those of what the model reads and regresses; a multi-task model
        with per-task pipelines also needs each row's instruction (``tasks``, ``N``). With a state
        estimator ``states`` are the recorded full states and ``given`` the observation's own state
        ``(N, Dg)`` beside them; with goal grounding, ``goals`` ``(N, G)`` are each row's recorded goal
        (states and actions are moved into its frame first)."""
        if self.network.goals is not None:
            if goals is None or states is None:
                raise ValueError("this VLA acts in the frame of the instructed goal: fit_normalizer(actions, states, "
                                 "goals=recorded_goals)")
            goals = np.asarray(goals, np.float64)
            states = torch.as_tensor(np.asarray(states, np.float64).reshape(len(goals), -1))
            chunks = torch.as_tensor(np.asarray(actions, np.float64).reshape(len(goals), -1, self.network.config.action_dim))
            states = self.network.goals.states_to_frame(states, goals).double().numpy()
            actions = self.network.goals.actions_to_frame(chunks, goals).double().numpy()
        estimator = self.network.estimator
        if estimator is not None:
            if states is None or (estimator.config.given_key is not None and given is None):
                raise ValueError("this VLA's state estimator needs the recorded states and the observation's own "
                                 "state: fit_normalizer(actions, states, given=observation_states)")
            estimator.fit_statistics({STATE_KEY: np.asarray(given)} if given is not None else {}, np.asarray(states))
        features = self.network.features
        if self.network.slot_features is not None and states is not None:
            if tasks is None:
                raise ValueError("this multi-task VLA reads each task through its own pipeline: pass each row's "
                                 "instruction (tasks=...) to fit_normalizer")
            actions, states = self._slotted_statistics(np.asarray(actions), np.asarray(states), list(tasks))
        elif features is not None and states is not None and self.network.config.state_dim:
            states = np.asarray(states, dtype=np.float64).reshape(-1, features.obs_dim)
            chunks = np.asarray(actions, dtype=np.float64).reshape(len(states), -1, features.action_dim)
            actions, states = features.encode_actions(states, chunks), features.features(states)
        self.network.normalizer.fit(actions=actions, states=states if self.network.config.state_dim else None)

    def _slotted_statistics(self, actions: np.ndarray, states: np.ndarray,
                            tasks: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """What a per-task-pipeline model reads and regresses, NaN outside each row's own slots
        (so every statistic comes from the task that owns the dimension)."""
        slotted = self.network.slot_features
        states = states.astype(np.float64).reshape(len(tasks), -1)
        chunks = actions.astype(np.float64).reshape(len(tasks), -1, self.network.config.action_dim)
        encoded = slotted.encode_actions(states, chunks, tasks)
        steps = self.network._within_horizon(tasks).numpy()[:, : encoded.shape[1], None]  # past the horizon: 0
        dims = slotted.owned_actions(tasks, encoded.shape[-1])[:, None, :]  # other tasks' dimensions: 0
        encoded[steps * dims == 0] = np.nan
        features = slotted.features(states, tasks).astype(np.float64)
        features[slotted.owned(tasks) == 0] = np.nan
        return encoded, features

    @property
    def normalizer_fitted(self) -> bool:
        return bool(self.network.normalizer.fitted)

    # -- acting -------------------------------------------------------------------------------
    def set_instruction(self, instruction: str) -> None:
        """The instruction to act on from now on (empties the action queue)."""
        self.instruction = instruction
        self._instruction_given = True
        self._queue = None
        self._check_instruction()

    def _check_instruction(self) -> None:
        text = self.instruction
        if self.seen_instructions and text not in self.seen_instructions and text not in self._warned:
            self._warned.add(text)
            logger.warning("VLA acting on an instruction it never saw in training: %r (trained on: %s)",
                           text, sorted(self.seen_instructions))

    def set_seed(self, seed: int) -> None:
        self.seed = int(seed)
        self.generator.manual_seed(self.seed)

    def reset(self) -> None:
        """Empty the action queue (call at episode start)."""
        self._queue = None

    def predict_chunk(self, observations: Any, instruction: str | Sequence[str] | None = None) -> np.ndarray:
        """Whole chunks ``(B, chunk_size, Da)`` for a batch of env observations or a LeRobot batch
        (a task view: ``Da`` of its task's action slots)."""
        batch = self.to_batch(observations)
        if instruction is not None or "task" not in batch:
            text = self.instruction if instruction is None else instruction
            n = len(next(v for k, v in batch.items() if k.startswith("observation.")))
            batch["task"] = [text] * n if isinstance(text, str) else list(text)
        self.network.eval()
        chunk = self.network.sample(batch, n_steps=self.n_steps, solver=self.solver, generator=self.generator)
        if self._slots:
            chunk = chunk[..., self._slots["action"][0]:self._slots["action"][1]]
        return chunk.cpu().numpy()

    def predict(self, observation: Any, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """One observation or a batch (nested Dict observations included); returns ``(action, state)``.
        Rows flagged in ``episode_start`` re-plan (the whole batch's queue is emptied)."""
        batched = is_batched(observation, self.observation_space)
        check_observation(observation, self.observation_space, batched, type(self).__name__)
        if episode_start is not None and np.any(episode_start):
            self._queue = None
        actions = self._predict_batch(observation if batched else add_batch_axis(observation), deterministic)
        return (actions if batched else actions[0]), state

    def _predict_batch(self, observations: Any, deterministic: bool) -> np.ndarray:
        self._check_instruction()
        first = next(iter(flatten_env_observation(observations).values()))
        if self._queue is not None and (self._queue.shape[1] == 0 or self._queue.shape[0] != len(first)):
            self._queue = None
        if self._queue is None:
            self._queue = self.predict_chunk(observations)[:, : self.actions_per_plan]
        action, self._queue = self._queue[:, 0], self._queue[:, 1:]
        if self._queue.shape[1] == 0:
            self._queue = None
        if isinstance(self.action_space, spaces.Box):
            action = np.clip(action, self.action_space.low, self.action_space.high)
        return action.astype(self.action_space.dtype)

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint_config(self) -> dict[str, Any]:
        return {"vla": self.config.to_json(), "instruction": self.instruction, "seed": self.seed, "task": self.task}

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.network.state_dict())

    @classmethod
    def from_checkpoint(cls, config, tensors, observation_space, action_space) -> "VLAModel":
        vla_config = VLAConfig.from_json(config["vla"])
        network = VLANetwork(vla_config, load_pretrained=False)
        result = network.load_state_dict(dict(tensors), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise CheckpointError(
                f"the weights do not fit this VLA configuration: missing {result.missing_keys[:5]}, unexpected "
                f"{result.unexpected_keys[:5]}; the checkpoint was edited or written by another version"
            )
        policy = cls.__new__(cls)
        policy._setup(network, observation_space, action_space, config.get("instruction"), config.get("seed", 0), "cpu",
                      task=config.get("task"))
        return policy

    def __repr__(self) -> str:
        c = self.network.config
        return (f"VLAModel(vision={c.vision_model_name!r}, llm={c.llm_model_name!r}, cameras={c.cameras}, "
                f"action_dim={c.action_dim}, chunk_size={c.chunk_size}, head={c.action_head!r}, "
                f"parameters={self.num_parameters():,})")
