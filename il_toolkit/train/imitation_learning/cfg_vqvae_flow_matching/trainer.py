"""CFG-VQVAE flow matching with K-OT regularisation.

A posterior encoder over (observation, action chunk) is quantised by a VQ-VAE codebook (with
dead-code replacement); the code is appended to the conditioning tokens, and dropped
(replaced by the codebook's learned ``null`` embedding) with probability ``cfg_drop``, so
one decoder learns both the conditional and unconditional velocity. A prior predicts the
code from the observation. At inference the code comes from the prior and the velocity is
guided: ``v = v_uncond + w * (v_code - v_uncond)`` with ``guidance_scale = w`` (``w = 1``:
no guidance, one decoder call per step). The K-OT term is described in
:mod:`il_toolkit.train.imitation_learning.latent_code`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from il_toolkit.train.imitation_learning.base import Context
from il_toolkit.train.imitation_learning.latent_code import LatentCodeTrainer


class CFGVQVAEFlowMatchingTrainer(LatentCodeTrainer):
    key = "cfg_vqvae_flow_matching_trainer_kot"
    cfg_drop: ClassVar[float] = 0.1

    def training_context(self, cond: torch.Tensor, actions: torch.Tensor) -> Context:
        context = self.encode_posterior(cond, actions)
        code = context["code"]
        drop = torch.rand(code.shape[0], device=self.device, generator=self.generator) < self.cfg_drop
        null = self.models["codebook"].null.expand_as(code)
        code = torch.where(drop[:, None], null, code)
        context["cond"] = self.with_code(cond, code)
        context["dropped_fraction"] = float(drop.float().mean())
        return context

    def inference_context(
        self,
        cond: torch.Tensor,
        *,
        deterministic: bool,
        generator: torch.Generator | None = None,
        guidance_scale: float = 1.0,
        code_choice: str = "sample",
        **options: Any,
    ) -> Context:
        if options:
            raise ValueError(f"unknown inference options {sorted(options)}; {self.key} takes guidance_scale, code_choice "
                             "(and, as every shortcut model, shortcut_step_size)")
        code = self.choose_code(cond, code_choice=code_choice, generator=generator)
        context: Context = {"cond": self.with_code(cond, code), "guidance_scale": float(guidance_scale)}
        if guidance_scale != 1.0:
            context["uncond"] = self.with_code(cond, self.models["codebook"].null.expand_as(code))
        return context

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, context: Context) -> torch.Tensor:
        decoder = self.decoder_for(context)
        step_size = context.get("step_size")
        v = decoder(x_t, t, context["cond"], step_size)
        if "uncond" in context:
            v_uncond = decoder(x_t, t, context["uncond"], step_size)
            v = v_uncond + context["guidance_scale"] * (v - v_uncond)
        return v

    def extra_losses(self, context, x_t, t, predicted, actions):
        loss, metrics = self.latent_losses(context, x_t, t, predicted, actions)
        metrics["cfg_dropped_fraction"] = context["dropped_fraction"]
        return loss, metrics
