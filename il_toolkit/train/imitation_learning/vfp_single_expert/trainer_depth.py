"""Single-expert VFP with depth as a fourth visual input (``observation.depth.<camera>``,
rendered by the simulator), L1 velocity loss. Depth inputs are dropped with the cameras."""

from __future__ import annotations

from il_toolkit.train.imitation_learning.vfp_single_expert.trainer import VFPSingleExpertTrainer


class VFPSingleExpertDepthTrainer(VFPSingleExpertTrainer):
    key = "vfp_single_expert_trainer_depth"
    velocity_loss_kind = "l1"
    requires_depth = True
