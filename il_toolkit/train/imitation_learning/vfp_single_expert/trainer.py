"""Single-expert VFP: t ~ Beta(1.0, 1.5), whole-camera dropout (p = 0.15), transformer info
embedder and action decoder, L2 velocity loss. Three cameras (head, left, right) is the
intended setup (see :func:`vfp_spec`), but any camera set, or state only, trains."""

from __future__ import annotations

from typing import Any

from il_toolkit.model.flow import TimeDistribution
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.train.imitation_learning.base import FlowMatchingTrainer

VFP_CAMERAS = ("head", "left", "right")


def vfp_spec(action_dim: int, *, depth: bool = False, **fields: Any) -> FlowModelSpec:
    """A spec with the three VFP cameras (and, with ``depth=True``, depth from the head camera)."""
    fields.setdefault("cameras", VFP_CAMERAS)
    if depth:
        fields.setdefault("depth_cameras", ("head",))
    return FlowModelSpec(action_dim=action_dim, **fields)


class VFPSingleExpertTrainer(FlowMatchingTrainer):
    key = "vfp_single_expert_trainer"
    time_distribution = TimeDistribution("beta", alpha=1.0, beta=1.5)
    camera_dropout = 0.15
    velocity_loss_kind = "l2"
