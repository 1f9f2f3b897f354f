"""Per-camera image backbones: pixels ``(B, C, H, W)`` -> tokens ``(B, n_tokens, d_model)``.

:class:`SmallCNN` is trained from scratch (the default). :class:`PretrainedBackbone` wraps any
user-supplied module that maps images to a feature map ``(B, F, h, w)`` or vector ``(B, F)``
and projects it to ``d_model`` tokens, so a pretrained network can be plugged in.
"""

from __future__ import annotations

import torch
from torch import nn


def to_float_image(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] -> float in [0, 1]; float input is passed through unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


class SmallCNN(nn.Module):
    """Three strided convolutions, then a ``grid x grid`` average pool: ``grid**2`` tokens.

    Input ``(B, C, H, W)`` floats; output ``(B, grid**2, d_model)``. Cost grows with H*W; at
    96x96 and ``d_model = 128`` this is ~10 MFLOP per image.
    """

    def __init__(self, in_channels: int, d_model: int, grid: int = 2, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, stride=2, padding=2),
            nn.GroupNorm(8, width),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GroupNorm(8, 2 * width),
            nn.SiLU(),
            nn.Conv2d(2 * width, d_model, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(grid),
        )
        self.position = nn.Parameter(torch.zeros(1, grid * grid, d_model))
        nn.init.normal_(self.position, std=0.02)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.net(images)  # (B, d, grid, grid)
        return features.flatten(2).transpose(1, 2) + self.position


class PretrainedBackbone(nn.Module):
    """Adapt a user-supplied image network to ``(B, n_tokens, d_model)`` tokens.

    ``network(images)`` may return ``(B, F, h, w)`` (pooled to ``grid x grid`` tokens) or
    ``(B, F)`` (one token). ``freeze=True`` stops gradients into the pretrained weights.
    """

    def __init__(self, network: nn.Module, feature_dim: int, d_model: int, grid: int = 2, freeze: bool = True) -> None:
        super().__init__()
        self.network = network
        self.freeze = freeze
        if freeze:
            for p in self.network.parameters():
                p.requires_grad_(False)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.project = nn.Linear(feature_dim, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            features = self.network(images)
        if features.dim() == 4:
            features = self.pool(features).flatten(2).transpose(1, 2)
        elif features.dim() == 2:
            features = features[:, None, :]
        else:
            raise ValueError(f"pretrained backbone returned shape {tuple(features.shape)}; expected (B, F, h, w) or (B, F)")
        return self.project(features)
