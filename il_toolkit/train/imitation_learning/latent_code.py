"""Shared machinery for the trainers with a discrete latent code (CFG-VQVAE and variational).

Components added to the shared ones::

    posterior   MLP([pooled conditioning, flattened normalised action chunk]) -> z_e (d_model)
    codebook    GuidedCodebook(codebook_size, d_model): VQ-VAE with dead-code replacement
    prior       MLP(pooled conditioning, detached) -> logits over the codebook_size codes

Training: the posterior's quantised code is appended to the conditioning tokens; the prior is
trained to predict the posterior's code (cross-entropy = KL(q || p) for a one-hot q, the
posterior/prior alignment term); the K-OT term is the Sinkhorn divergence between one-step
endpoint estimates ``x_t + (1 - t) v`` (samples with ``t >= kot_min_time``) and the
demonstrated chunks. Inference: the code is drawn from the prior (``code_choice="sample"``,
the default) or its most likely code (``"argmax"``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch.nn import functional as F

from il_toolkit.model.components import FlowModels
from il_toolkit.model.encoders import mlp
from il_toolkit.model.flow import predicted_endpoint
from il_toolkit.model.ot import sinkhorn_divergence
from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.model.vq import GuidedCodebook
from il_toolkit.train.imitation_learning.base import Context, FlowMatchingTrainer


class LatentCodeTrainer(FlowMatchingTrainer):
    vq_weight: ClassVar[float] = 1.0
    prior_weight: ClassVar[float] = 0.1
    kot_weight: ClassVar[float] = 0.05
    kot_min_time: ClassVar[float] = 0.5
    kot_epsilon: ClassVar[float] = 0.05

    @classmethod
    def build_models(cls, spec: FlowModelSpec) -> FlowModels:
        models = super().build_models(spec)
        d = spec.d_model
        models["posterior"] = mlp(d + spec.horizon * spec.action_dim, d, d)
        models["codebook"] = GuidedCodebook(spec.codebook_size, d)
        models["prior"] = mlp(d, d, spec.codebook_size)
        return models

    @staticmethod
    def pooled(cond: torch.Tensor) -> torch.Tensor:
        return cond.mean(dim=1)

    def encode_posterior(self, cond: torch.Tensor, actions: torch.Tensor) -> Context:
        z_e = self.models["posterior"](torch.cat([self.pooled(cond), actions.flatten(1)], dim=-1))
        vq = self.models["codebook"](z_e)
        prior_logits = self.models["prior"](self.pooled(cond).detach())
        return {"cond": cond, "code": vq.quantized, "vq": vq, "prior_logits": prior_logits}

    def choose_code(self, cond: torch.Tensor, *, code_choice: str = "sample", generator: torch.Generator | None = None) -> torch.Tensor:
        """Codebook vectors ``(B, d_model)`` drawn from the prior."""
        logits = self.models["prior"](self.pooled(cond))
        if code_choice == "argmax":
            indices = logits.argmax(dim=-1)
        elif code_choice == "sample":
            indices = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
        else:
            raise ValueError(f"code_choice must be 'sample' or 'argmax', got {code_choice!r}")
        return self.models["codebook"].lookup(indices)

    @staticmethod
    def with_code(cond: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond, code[:, None, :]], dim=1)

    def latent_losses(
        self, context: Context, x_t: torch.Tensor, t: torch.Tensor, predicted: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        vq = context["vq"]
        prior_loss = F.cross_entropy(context["prior_logits"], vq.indices)
        prior_accuracy = (context["prior_logits"].argmax(-1) == vq.indices).float().mean()
        late = t >= self.kot_min_time
        if "step_size" in context:  # a shortcut model's large-step rows: x_t + (1 - t) v is no endpoint there
            late = late & (context["step_size"] == 0)
        if int(late.sum()) >= 2:
            endpoint = predicted_endpoint(x_t[late], t[late], predicted[late])
            kot = sinkhorn_divergence(endpoint.flatten(1), actions[late].flatten(1), self.kot_epsilon)
        else:
            kot = torch.zeros((), device=self.device)
        usage = torch.bincount(vq.indices, minlength=self.spec.codebook_size).float()
        usage = usage / usage.sum()
        total = self.vq_weight * vq.loss + self.prior_weight * prior_loss + self.kot_weight * kot
        metrics = {
            "vq_loss": float(vq.loss.detach()),
            "prior_loss": float(prior_loss.detach()),
            "prior_accuracy": float(prior_accuracy),
            "kot": float(kot.detach()),
            "code_perplexity": float(vq.perplexity),
            "codes_used": float((usage > 0).sum()),
            "codes_replaced": float(vq.replaced),
        }
        return total, metrics


def evenness(usage: torch.Tensor) -> float:
    """Normalised entropy of a usage distribution: 1 = perfectly even, 0 = one entry only."""
    p = usage / usage.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return float(entropy / math.log(len(p))) if len(p) > 1 else 1.0

