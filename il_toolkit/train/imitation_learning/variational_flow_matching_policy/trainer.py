"""Variational flow matching: posterior/prior codes, a gated mixture of expert velocity decoders.

Components: the shared ones, with ``action_decoder`` a :class:`MixtureActionDecoder`, plus
``posterior``, ``codebook``, ``prior`` (see :mod:`..latent_code`) and ``gate`` (MLP over
[pooled conditioning, code] -> expert logits). Training mixes the experts with the softmax
gate weights; a load-balancing term (``balance_weight``) keeps every expert in use and a
per-sample gate-entropy term (``gate_entropy_weight``) makes each sample lean on few experts. Logged:
the mean gate weight per expert, the fraction of samples whose top expert is each one, and
the evenness of expert usage (normalised entropy, 1 = even). At inference the code is drawn
from the prior and the gate picks experts softly (``expert_choice="soft"``) or its top one
(``"top1"``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from il_toolkit.model.components import FlowModels
from il_toolkit.model.encoders import mlp
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.train.imitation_learning.base import Context
from il_toolkit.train.imitation_learning.latent_code import LatentCodeTrainer, evenness
from il_toolkit.train.imitation_learning.variational_flow_matching_policy.moe import MixtureActionDecoder


class VariationalFlowMatchingPolicyTrainer(LatentCodeTrainer):
    key = "variational_flow_matching_policy_trainer"
    balance_weight: ClassVar[float] = 0.1
    gate_entropy_weight: ClassVar[float] = 0.05
    spec_fields_unused: ClassVar[tuple[str, ...]] = ()  # its mixture's experts are mlp_expert_width wide

    @classmethod
    def build_models(cls, spec: FlowModelSpec) -> FlowModels:
        if spec.n_experts < 1:
            raise ValueError(f"the variational trainer needs n_experts >= 1, got {spec.n_experts}")
        models = super().build_models(spec)
        models["action_decoder"] = MixtureActionDecoder(spec)
        models["gate"] = mlp(2 * spec.d_model, spec.d_model, spec.n_experts)
        return models

    def gate_weights(self, cond: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.models["gate"](torch.cat([self.pooled(cond), code], dim=-1)).softmax(dim=-1)

    def training_context(self, cond: torch.Tensor, actions: torch.Tensor) -> Context:
        context = self.encode_posterior(cond, actions)
        context["weights"] = self.gate_weights(cond, context["code"])
        context["cond"] = self.with_code(cond, context["code"])
        return context

    def inference_context(
        self,
        cond: torch.Tensor,
        *,
        deterministic: bool,
        generator: torch.Generator | None = None,
        code_choice: str = "sample",
        expert_choice: str = "soft",
        **options: Any,
    ) -> Context:
        if options:
            raise ValueError(f"unknown inference options {sorted(options)}; {self.key} takes code_choice, expert_choice "
                             "(and, as every shortcut model, shortcut_step_size)")
        code = self.choose_code(cond, code_choice=code_choice, generator=generator)
        weights = self.gate_weights(cond, code)
        if expert_choice == "top1":
            weights = torch.nn.functional.one_hot(weights.argmax(-1), weights.shape[-1]).to(weights.dtype)
        elif expert_choice != "soft":
            raise ValueError(f"expert_choice must be 'soft' or 'top1', got {expert_choice!r}")
        return {"cond": self.with_code(cond, code), "weights": weights}

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        return self.decoder_for(context)(x_t, t, context["cond"], context["weights"], context.get("step_size"))

    def extra_losses(self, context, x_t, t, predicted, actions):
        loss, metrics = self.latent_losses(context, x_t, t, predicted, actions)
        weights = context["weights"]
        mean_usage = weights.mean(dim=0)  # (E,)
        n = mean_usage.shape[0]
        balance = n * (mean_usage**2).sum() - 1.0  # 0 when usage is even, n - 1 when one expert takes all
        top1 = torch.bincount(weights.argmax(-1), minlength=n).float() / weights.shape[0]
        # low per-sample entropy: each sample leans on few experts (specialisation), while the
        # balance term keeps the batch-average usage even
        sample_entropy = -(weights * torch.log(weights.clamp_min(1e-9))).sum(-1).mean()
        metrics["expert_balance_loss"] = float(balance.detach())
        metrics["gate_sample_entropy"] = float(sample_entropy.detach())
        metrics["expert_evenness"] = evenness(mean_usage.detach())
        for e in range(n):
            metrics[f"expert_usage/{e}"] = float(mean_usage[e].detach())
            metrics[f"expert_top1/{e}"] = float(top1[e])
        return loss + self.balance_weight * balance + self.gate_entropy_weight * sample_entropy, metrics
