"""A VQ-VAE codebook with straight-through gradients and dead-code replacement.

``forward(z_e (B, D)) -> VQOutput`` with the quantised vector (straight-through), code
indices ``(B,)``, the codebook + commitment loss, and usage statistics. During training,
codes whose running usage falls below ``dead_threshold`` are re-initialised to random
encoder outputs from the current batch (dead-code replacement).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class VQOutput:
    quantized: torch.Tensor  # (B, D), straight-through: forward = codebook vector, grad -> z_e
    indices: torch.Tensor  # (B,) long
    loss: torch.Tensor  # scalar: ||sg(z_e) - e||^2 + beta * ||z_e - sg(e)||^2
    perplexity: torch.Tensor  # scalar, exp(entropy of code usage in the batch)
    replaced: int  # codes re-initialised this call


class VectorQuantizer(nn.Module):
    def __init__(
        self, n_codes: int, dim: int, *, beta: float = 0.25, usage_decay: float = 0.99, dead_threshold: float = 0.03
    ) -> None:
        super().__init__()
        self.n_codes = n_codes
        self.beta = beta
        self.usage_decay = usage_decay
        self.dead_threshold = dead_threshold
        self.embedding = nn.Parameter(torch.randn(n_codes, dim) * 0.1)
        self.register_buffer("usage", torch.full((n_codes,), 1.0 / n_codes))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """Indices ``(B,)`` of the nearest codes to ``z_e (B, D)``."""
        return torch.cdist(z_e, self.embedding).argmin(dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embedding[indices]

    def forward(self, z_e: torch.Tensor) -> VQOutput:
        indices = self.nearest(z_e.detach())
        e = self.embedding[indices]
        loss = F.mse_loss(e, z_e.detach()) + self.beta * F.mse_loss(z_e, e.detach())
        quantized = z_e + (e - z_e).detach()
        counts = torch.bincount(indices, minlength=self.n_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        replaced = 0
        if self.training:
            replaced = self._update_usage_and_replace(z_e.detach(), probs)
        return VQOutput(quantized, indices, loss, perplexity, replaced)

    @torch.no_grad()
    def _update_usage_and_replace(self, z_e: torch.Tensor, probs: torch.Tensor) -> int:
        self.usage.mul_(self.usage_decay).add_((1 - self.usage_decay) * probs)
        dead = torch.nonzero(self.usage < self.dead_threshold / self.n_codes).flatten()
        if dead.numel() == 0 or z_e.shape[0] == 0:
            return 0
        picks = torch.randint(0, z_e.shape[0], (dead.numel(),), device=z_e.device)
        noise = 0.01 * torch.randn_like(z_e[picks])
        self.embedding.data[dead] = z_e[picks] + noise
        self.usage[dead] = 1.0 / self.n_codes
        return int(dead.numel())


class GuidedCodebook(VectorQuantizer):
    """A codebook plus a learned ``null`` embedding ``(D,)`` that stands for "no code"
    (classifier-free guidance drops the code by substituting it)."""

    def __init__(self, n_codes: int, dim: int, **kwargs) -> None:
        super().__init__(n_codes, dim, **kwargs)
        self.null = nn.Parameter(torch.zeros(dim))
