"""clip_grad_norms: PyTorch's clip_grad_norm_ group by group, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

from il_toolkit.train.grad_clip import clip_grad_norms


def _groups(seed: int, scale: float, dtype: torch.dtype = torch.float32) -> dict[str, list[torch.nn.Parameter]]:
    generator = torch.Generator().manual_seed(seed)
    shapes = {"encoder": [(7, 3), (7,)], "decoder": [(5, 7), (5,), (2, 2, 2)], "unused": [(4,)]}
    groups = {}
    for name, group_shapes in shapes.items():
        params = [torch.nn.Parameter(torch.zeros(shape, dtype=dtype)) for shape in group_shapes]
        for param in params:
            if name != "unused":
                param.grad = torch.randn(param.shape, generator=generator).to(dtype) * scale
        groups[name] = params
    return groups


@pytest.mark.parametrize("scale, max_norm", [(10.0, 1.0), (0.01, 1.0), (3.0, math.inf)])
def test_same_gradients_and_norms_as_clip_grad_norm(scale: float, max_norm: float) -> None:
    ours, reference = _groups(0, scale), _groups(0, scale)
    norms = clip_grad_norms(ours, max_norm)
    expected = {name: torch.nn.utils.clip_grad_norm_(params, max_norm)
                for name, params in reference.items() if name != "unused"}
    assert set(norms) == {"encoder", "decoder"}  # no gradient, no entry
    for name in expected:
        assert torch.equal(norms[name], expected[name])
        for mine, theirs in zip(ours[name], reference[name]):
            assert torch.equal(mine.grad, theirs.grad)
    if max_norm == 1.0 and scale == 10.0:
        clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours["decoder"]]))
        assert clipped == pytest.approx(1.0, rel=1e-5)


def test_parameters_without_gradient_are_skipped_within_a_group() -> None:
    groups = _groups(1, 10.0)
    groups["decoder"].append(torch.nn.Parameter(torch.ones(3)))
    reference = _groups(1, 10.0)
    norms = clip_grad_norms(groups, 1.0)
    assert torch.equal(norms["decoder"], torch.nn.utils.clip_grad_norm_(reference["decoder"], 1.0))
    assert groups["decoder"][-1].grad is None


def test_mixed_dtypes_fall_back_to_pytorch_per_group() -> None:
    groups = _groups(2, 10.0)
    groups["decoder"] = _groups(2, 10.0, torch.float64)["decoder"]
    reference = _groups(2, 10.0)
    reference["decoder"] = _groups(2, 10.0, torch.float64)["decoder"]
    norms = clip_grad_norms(groups, 1.0)
    for name in ("encoder", "decoder"):
        assert torch.equal(norms[name], torch.nn.utils.clip_grad_norm_(reference[name], 1.0))
        for mine, theirs in zip(groups[name], reference[name]):
            assert torch.equal(mine.grad, theirs.grad)


def test_no_gradients_at_all_gives_no_norms() -> None:
    assert clip_grad_norms({"a": [torch.nn.Parameter(torch.ones(2))], "b": iter(())}, 1.0) == {}


def test_a_non_finite_norm_spoils_the_gradients_as_pytorch_does_even_without_a_limit() -> None:
    ours, reference = _groups(3, 1.0), _groups(3, 1.0)
    for groups in (ours, reference):
        groups["encoder"][0].grad[0, 0] = float("inf")
    norms = clip_grad_norms(ours, math.inf)
    assert torch.equal(norms["encoder"], torch.nn.utils.clip_grad_norm_(reference["encoder"], math.inf))
    for mine, theirs in zip(ours["encoder"], reference["encoder"]):
        torch.testing.assert_close(mine.grad, theirs.grad, equal_nan=True)


def test_clipping_is_not_recorded_by_autograd() -> None:
    param = torch.nn.Parameter(torch.ones(3))
    weight = torch.ones(3, requires_grad=True)
    param.grad = weight * 10.0  # a gradient that itself requires grad (create_graph=True)
    norms = clip_grad_norms({"a": [param]}, 1.0)
    assert not norms["a"].requires_grad
