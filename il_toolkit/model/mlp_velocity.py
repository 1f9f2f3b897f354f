"""Flow-matching networks sized for low-dimensional inputs: an MLP conditioning and velocity net.

A 5-dim PushT state does not need a transformer: one training step of the transformer flow model
cost 366 ms (18.5 GFLOP) against 6.2 ms for a 3x256 MLP velocity net on the same batch, and the
MLP learns the task as well per step. Spec ``velocity_net="mlp"`` (the default when there is no
camera) builds these in place of :class:`~il_toolkit.model.transformer.InfoEmbedder` and
:class:`~il_toolkit.model.transformer.ActionDecoder`, with the same call signatures, so every
trainer family (codes, mixtures of decoders, MI estimator) works on either.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

from il_toolkit.model.encoders import SinusoidalTimeEmbedding, StepSizeEmbedding, mlp, with_step_size
from il_toolkit.model.spec import MLP_TIME_EMBEDDINGS


class WindowStateEncoder(nn.Module):
    """Normalised state features ``(B, To, Ds)`` -> one token per step ``(B, To, 1, d_model)`` by a
    linear map: the velocity net's first layer does the nonlinear work."""

    def __init__(self, state_dim: int, d_model: int) -> None:
        super().__init__()
        self.proj = nn.Linear(state_dim, d_model)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.proj(state)[:, :, None, :]


class FlatInfoEmbedder(nn.Module):
    """Fuse per-source tokens by concatenation: ``sources`` (each ``(B, To, n_i, d)``) -> ``(B, 1, d)``.

    Same contract as :class:`~il_toolkit.model.transformer.InfoEmbedder` (``dropped`` ``(B, n_sources)``
    replaces a whole source by a learned "missing" embedding); ``tokens_per_source`` fixes the layout.
    """

    def __init__(self, tokens_per_source: list[int], n_obs_steps: int, d_model: int) -> None:
        super().__init__()
        self.missing = nn.Parameter(torch.randn(len(tokens_per_source), d_model) * 0.02)
        self.proj = nn.Linear(n_obs_steps * sum(tokens_per_source) * d_model, d_model)

    def forward(self, sources: list[torch.Tensor], dropped: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        for i, x in enumerate(sources):
            if dropped is not None:
                keep = (~dropped[:, i]).to(x.dtype)[:, None, None, None]
                x = x * keep + self.missing[i] * (1.0 - keep)
            parts.append(x.flatten(1))
        return self.proj(torch.cat(parts, dim=1))[:, None, :]


class MLPVelocityNet(nn.Module):
    """``forward(x_t (B, H, Da), t (B,), cond (B, N, d_model), step_size (B,) | None) -> v (B, H, Da)``.

    Input: the flattened noisy chunk, the time embedding (plus the step size's, for a shortcut
    model: ``shortcut_steps > 0``) and the sum of the conditioning tokens (the observation token,
    plus a code token where a trainer appends one), through ``n_layers`` GELU layers of ``width``.
    ``time_embedding``: ``"sinusoids_mlp"`` passes the time's ``d_model`` sinusoids through a Linear-SiLU-Linear
    MLP first (as the transformer does); ``"sinusoids"`` feeds them to the first layer as they are.
    Without autograd on the CPU (sampling, and a shortcut model's no-grad targets) its activations run
    outside oneDNN (see :func:`native_elementwise`): the same values to ~1e-7.
    """

    def __init__(
        self, action_dim: int, horizon: int, d_model: int, width: int = 256, n_layers: int = 3, shortcut_steps: int = 0,
        time_embedding: str = "sinusoids_mlp",
    ) -> None:
        super().__init__()
        if time_embedding not in MLP_TIME_EMBEDDINGS:
            raise ValueError(f"time_embedding must be one of {MLP_TIME_EMBEDDINGS}, got {time_embedding!r}")
        self.horizon = horizon
        self.action_dim = action_dim
        self.time = SinusoidalTimeEmbedding(d_model, with_mlp=time_embedding == "sinusoids_mlp")
        self.step = StepSizeEmbedding(d_model, shortcut_steps) if shortcut_steps else None
        self.net = mlp(horizon * action_dim + 2 * d_model, width, horizon * action_dim, n_layers, activation=nn.GELU)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, step_size: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x_t.shape[1] != self.horizon:
            raise ValueError(f"action chunk has horizon {x_t.shape[1]}, the decoder was built for {self.horizon}")
        if torch.is_grad_enabled() or x_t.device.type != "cpu":
            return self._velocity(x_t, t, cond, step_size)
        with native_elementwise():
            return self._velocity(x_t, t, cond, step_size)

    def _velocity(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, step_size: torch.Tensor | None
    ) -> torch.Tensor:
        time = with_step_size(self.step, step_size, self.time(t))
        inputs = torch.cat([x_t.flatten(1), time, cond.sum(dim=1)], dim=-1)
        return self.net(inputs).reshape(x_t.shape)


# the accessors torch.backends.mkldnn.flags uses; None in a PyTorch without them (then oneDNN is left as it is)
_GET_ONEDNN = getattr(torch._C, "_get_mkldnn_enabled", None)
_SET_ONEDNN = getattr(torch._C, "_set_mkldnn_enabled", None)
_ONEDNN_LOCK = threading.Lock()
_onednn_off_depth = 0  # blocks inside native_elementwise now, over all threads
_onednn_before = True  # the flag the first of them found


@contextlib.contextmanager
def native_elementwise() -> Iterator[None]:
    """oneDNN off for the block, so that elementwise ops take PyTorch's own kernels: at batch 1 oneDNN's GELU
    cost ~11 us a call against ~3 us (matrix products took the same time either way). Sets the flag that
    ``torch.backends.mkldnn.flags`` sets, directly: that context manager costs ~14 us, more than it saves here.
    The flag is process-wide: it goes off when the first of overlapping blocks (any thread) enters and back to
    what that one found when the last leaves; a convolution another thread runs meanwhile takes PyTorch's kernel."""
    global _onednn_off_depth, _onednn_before
    if _SET_ONEDNN is None or _GET_ONEDNN is None:
        yield
        return
    with _ONEDNN_LOCK:
        if _onednn_off_depth == 0:
            _onednn_before = _GET_ONEDNN()
            _SET_ONEDNN(False)
        _onednn_off_depth += 1
    try:
        yield
    finally:
        with _ONEDNN_LOCK:
            _onednn_off_depth -= 1
            if _onednn_off_depth == 0:
                _SET_ONEDNN(_onednn_before)
