"""InfoNCE: a variational lower bound on mutual information.

For paired embeddings ``u (B, D)``, ``v (B, D)`` and critic ``f(u_i, v_j) = <u_i, v_j> / tau``
(cosine similarity over temperature), ``I(U; V) >= log B - L_NCE`` where ``L_NCE`` is the
cross-entropy of picking the true pair among the B candidates (van den Oord et al., 2018).
The bound saturates at ``log B`` nats.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def infonce(u: torch.Tensor, v: torch.Tensor, temperature: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, mi_lower_bound)`` in nats; ``loss`` is symmetric over both directions."""
    if u.shape != v.shape or u.dim() != 2:
        raise ValueError(f"infonce takes two (B, D) tensors of the same shape, got {tuple(u.shape)} and {tuple(v.shape)}")
    logits = F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / temperature
    labels = torch.arange(u.shape[0], device=u.device)
    loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    return loss, math.log(u.shape[0]) - loss.detach()
