"""A mixture of expert velocity decoders: ``sum_e w_e * v_e(x_t, t, cond)``."""

from __future__ import annotations

import torch
from torch import nn

from il_toolkit.model.spec import FlowModelSpec
from il_toolkit.model.components import build_action_decoder


class MixtureActionDecoder(nn.Module):
    """``n_experts`` velocity nets (the spec's ``velocity_net``; MLPs ``mlp_expert_width`` wide);
    ``forward(x_t, t, cond, weights (B, E), step_size) -> (B, H, Da)`` (``step_size`` as the experts take it).

    Experts whose weight is zero for the whole batch are skipped (top-1 gating at inference
    then costs one decoder call per step).
    """

    def __init__(self, spec: FlowModelSpec) -> None:
        super().__init__()
        self.experts = nn.ModuleList(build_action_decoder(spec, expert=True) for _ in range(spec.n_experts))

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, weights: torch.Tensor,
        step_size: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = torch.zeros_like(x_t)
        for e, expert in enumerate(self.experts):
            w = weights[:, e]
            if not self.training and not bool((w > 0).any()):
                continue
            out = out + w[:, None, None] * expert(x_t, t, cond, step_size)
        return out
