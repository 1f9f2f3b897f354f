"""Build the shared components of a flow policy and turn a batch into conditioning tokens.

``build_flow_models(spec)`` returns :class:`FlowModels`, an ``nn.ModuleDict`` (the trainer
contract's ``models``) that also carries its :class:`FlowModelSpec`. Its entries::

    normalizer               Normalizer (buffers only)
    backbone_<camera>        SmallCNN, one per RGB camera
    depth_backbone_<camera>  SmallCNN with one input channel, one per depth input
    state_encoder            StateEncoder (only when state_dim > 0)
    info_embedder            InfoEmbedder
    action_decoder           ActionDecoder

With ``spec.velocity_net == "mlp"`` the last three are :mod:`il_toolkit.model.mlp_velocity`'s
WindowStateEncoder, FlatInfoEmbedder and MLPVelocityNet (same signatures).

Trainer families add their own entries (codebook, prior, gate, ...).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from il_toolkit.model.backbones import SmallCNN, to_float_image
from il_toolkit.model.encoders import StateEncoder
from il_toolkit.model.mlp_velocity import FlatInfoEmbedder, MLPVelocityNet, WindowStateEncoder
from il_toolkit.model.normalizer import Normalizer
from il_toolkit.model.spec import ACTION_KEY, ACTION_PAD_KEY, STATE_KEY, FlowModelSpec
from il_toolkit.model.transformer import ActionDecoder, InfoEmbedder


# normalised state entries are clipped to this many standard deviations (as the MLP learner's and SB3's
# VecNormalize): a state the demonstrations never showed cannot drive the network far outside its data
STATE_CLIP = 10.0


class BatchError(ValueError):
    """A batch that does not match the model's inputs; the message names the key and the fix."""


class FlowModels(nn.ModuleDict):
    """An ``nn.ModuleDict`` of named components plus the ``spec`` they were built from."""

    def __init__(self, spec: FlowModelSpec, modules: Mapping[str, nn.Module] | None = None) -> None:
        super().__init__(modules)
        self.spec = spec


def n_sources(spec: FlowModelSpec) -> int:
    return len(spec.visual_inputs) + (1 if spec.state_dim > 0 else 0)


def build_flow_models(spec: FlowModelSpec) -> FlowModels:
    """The components every flow trainer shares (see module docstring)."""
    d = spec.d_model
    models = FlowModels(spec)
    positions = spec.horizon if spec.action_statistics == "per_position" else None
    models["normalizer"] = Normalizer(spec.state_dim, spec.action_dim, spec.normalization, action_positions=positions)
    for name, _, channels in spec.visual_inputs:
        models[name] = SmallCNN(channels, d, grid=spec.image_token_grid)
    flat = spec.velocity_net == "mlp"
    if spec.state_dim > 0:
        models["state_encoder"] = WindowStateEncoder(spec.state_dim, d) if flat else StateEncoder(spec.state_dim, d)
    if flat:
        tokens = [spec.image_token_grid**2] * len(spec.visual_inputs) + ([1] if spec.state_dim > 0 else [])
        models["info_embedder"] = FlatInfoEmbedder(tokens, spec.n_obs_steps, d)
    else:
        models["info_embedder"] = InfoEmbedder(
            n_sources(spec), spec.n_obs_steps, d, spec.n_heads, spec.embedder_layers, spec.ff_mult, spec.dropout
        )
    models["action_decoder"] = build_action_decoder(spec)
    return models


def build_action_decoder(spec: FlowModelSpec, *, expert: bool = False) -> nn.Module:
    """The velocity network the spec asks for: ``forward(x_t (B, H, Da), t (B,), cond (B, N, d), step_size (B,) | None)
    -> (B, H, Da)`` (``step_size`` only for a shortcut model, ``spec.shortcut_steps > 0``). ``expert``: one expert of a
    mixture (an MLP then ``spec.mlp_expert_width`` wide)."""
    if spec.velocity_net == "mlp":
        width = spec.mlp_expert_width if expert else spec.mlp_width
        return MLPVelocityNet(spec.action_dim, spec.horizon, spec.d_model, width, spec.mlp_layers,
                              spec.shortcut_steps, spec.mlp_time_embedding)
    return ActionDecoder(spec.action_dim, spec.horizon, spec.d_model, spec.n_heads, spec.decoder_layers, spec.ff_mult,
                         spec.dropout, spec.shortcut_steps)


def _with_time_axis(value: torch.Tensor, key: str, spec: FlowModelSpec, event_dims: int) -> torch.Tensor:
    """Add the ``To`` axis when a single-step batch omits it; check ``To`` otherwise."""
    if value.dim() == event_dims + 1 and spec.n_obs_steps == 1:
        value = value[:, None]
    if value.dim() != event_dims + 2:
        raise BatchError(
            f"batch[{key!r}] has shape {tuple(value.shape)}; expected (B, To={spec.n_obs_steps}, ...) "
            f"with {event_dims} trailing dimensions"
        )
    if value.shape[1] != spec.n_obs_steps:
        raise BatchError(
            f"batch[{key!r}] has {value.shape[1]} observation steps; the model was built for n_obs_steps={spec.n_obs_steps}"
        )
    return value


def check_batch(batch: Mapping[str, torch.Tensor], spec: FlowModelSpec, *, need_action: bool) -> None:
    """Raise :class:`BatchError` naming the first missing or mis-shaped input."""
    expected = [key for _, key, _ in spec.visual_inputs] + ([STATE_KEY] if spec.state_dim > 0 else [])
    for key in expected:
        if key not in batch:
            cameras = ", ".join(spec.cameras) or "none"
            depth = ", ".join(spec.depth_cameras) or "none"
            raise BatchError(
                f"batch has no {key!r}: this model expects {', '.join(expected)} (cameras: {cameras}; depth: {depth}). "
                f"Add {key!r} to the batch, or train a model whose spec does not list it; batch keys: {sorted(batch)}"
            )
    if need_action:
        if ACTION_KEY not in batch:
            raise BatchError(f"batch has no {ACTION_KEY!r} (B, horizon={spec.horizon}, Da={spec.action_dim}) chunk to learn from")
        action = batch[ACTION_KEY]
        if action.dim() != 3 or action.shape[1:] != (spec.horizon, spec.action_dim):
            raise BatchError(
                f"batch[{ACTION_KEY!r}] has shape {tuple(action.shape)}; expected (B, {spec.horizon}, {spec.action_dim}) "
                "(batch, horizon, action_dim)"
            )
        pad = batch.get(ACTION_PAD_KEY)
        if pad is not None and tuple(pad.shape) != tuple(action.shape[:2]):
            raise BatchError(
                f"batch[{ACTION_PAD_KEY!r}] has shape {tuple(pad.shape)}; expected (B, horizon) = {tuple(action.shape[:2])}, "
                "True at the chunk positions that have no label"
            )


def observation_sources(models: FlowModels, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per-source tokens ``(B, To, n_tokens, d_model)``: visual inputs in spec order, then state."""
    spec = models.spec
    check_batch(batch, spec, need_action=False)
    sources = []
    for name, key, channels in spec.visual_inputs:
        images = _with_time_axis(batch[key], key, spec, event_dims=3)
        b, to, c, h, w = images.shape
        if c != channels:
            hint = " (images must be channels-first: (B, To, C, H, W))" if w == channels else ""
            raise BatchError(f"batch[{key!r}] has {c} channels, the model expects {channels}{hint}")
        if (h, w) != spec.image_size:
            raise BatchError(
                f"batch[{key!r}] images are {h}x{w} pixels, the model was built for {spec.image_size[0]}x{spec.image_size[1]}: "
                "resize them (e.g. torch.nn.functional.interpolate) or build the model with image_size=(H, W)"
            )
        pixels = to_float_image(images).reshape(b * to, c, h, w)
        sources.append(models[name](pixels).reshape(b, to, -1, spec.d_model))
    if spec.state_dim > 0:
        state = _with_time_axis(batch[STATE_KEY].float(), STATE_KEY, spec, event_dims=1)
        if state.shape[-1] != spec.state_dim:
            raise BatchError(f"batch[{STATE_KEY!r}] has dimension {state.shape[-1]}, the model expects state_dim={spec.state_dim}")
        normalized = models["normalizer"].normalize_state(state).clamp(-STATE_CLIP, STATE_CLIP)
        sources.append(models["state_encoder"](normalized))
    return sources
