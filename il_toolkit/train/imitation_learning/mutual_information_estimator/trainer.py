"""Flow policy + mutual-information estimator between state and action representations.

Components added to the shared ones: ``mi_state_encoder`` (pooled conditioning tokens ->
``mi_dim``) and ``mi_action_encoder`` (flattened normalised action chunk -> ``mi_dim``).
The InfoNCE loss (weight ``mi_weight``) trains both encoders and, through the conditioning,
the observation representation; ``mi_estimate`` (nats, <= log B) is logged every step.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from il_toolkit.model.components import FlowModels
from il_toolkit.model.encoders import mlp
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.train.imitation_learning.base import Context, FlowMatchingTrainer
from il_toolkit.train.imitation_learning.mutual_information_estimator.infonce import infonce


class MutualInformationEstimatorTrainer(FlowMatchingTrainer):
    key = "mutual_information_estimator_trainer"
    mi_weight: ClassVar[float] = 0.1
    temperature: ClassVar[float] = 0.1

    @classmethod
    def build_models(cls, spec: FlowModelSpec) -> FlowModels:
        models = super().build_models(spec)
        models["mi_state_encoder"] = mlp(spec.d_model, spec.d_model, spec.mi_dim)
        models["mi_action_encoder"] = mlp(spec.horizon * spec.action_dim, spec.d_model, spec.mi_dim)
        return models

    def training_context(self, cond: torch.Tensor, actions: torch.Tensor) -> Context:
        return {"cond": cond, "actions": actions}

    def extra_losses(self, context, x_t, t, predicted, actions):
        u = self.models["mi_state_encoder"](context["cond"].mean(dim=1))
        v = self.models["mi_action_encoder"](actions.flatten(1))
        loss, estimate = infonce(u, v, self.temperature)
        metrics = {"infonce_loss": float(loss.detach()), "mi_estimate": float(estimate), "mi_upper_limit": math.log(u.shape[0])}
        return self.mi_weight * loss, metrics
