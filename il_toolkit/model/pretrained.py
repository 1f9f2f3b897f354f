"""Vision encoders and language models for the VLA: built-in (from scratch) or Hugging Face.

A model name is one of:

- ``"builtin-small"``: a small network initialised from scratch (the default; runs on a CPU);
- a local directory holding a Hugging Face ``save_pretrained()`` copy (``config.json`` + weights,
  plus the tokenizer files for a language model), loaded with ``local_files_only=True``;
- a Hugging Face id already in the local cache (``~/.cache/huggingface``), also loaded offline.

Nothing here reaches for the network unless ``IL_TOOLKIT_DOWNLOAD_MODELS=1`` is set (then a Hugging
Face id missing from the cache is downloaded, safetensors weights only); otherwise a name that is
none of these raises :class:`OfflineModelError` naming what to pass instead. ``transformers`` is
imported lazily.

Checkpoints rebuild a Hugging Face model from its stored config (``hf_config``) and fill in
the weights from ``model.safetensors``, so the original directory is only needed again for a
language model's tokenizer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from il_toolkit.model.backbones import SmallCNN, to_float_image
from il_toolkit.model.tokenizer import ByteTokenizer

BUILTIN = "builtin-small"
DOWNLOAD_ENV = "IL_TOOLKIT_DOWNLOAD_MODELS"  # "1": Hugging Face ids missing from the cache are downloaded


def downloads_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV, "") == "1"


class OfflineModelError(ValueError):
    """A model name that cannot be loaded without a network; the message names what to pass."""


def _offline_error(what: str, flag: str, name: str, cause: Exception | None = None) -> OfflineModelError:
    detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return OfflineModelError(
        f"{what} {name!r} is neither {BUILTIN!r} nor a local directory, nor in the local Hugging Face cache"
        f"{detail}. Pass {flag}={BUILTIN!r} (a small model trained from scratch), or {flag}='/path/to/dir' holding "
        f"a save_pretrained() copy (config.json + weights{' + tokenizer files' if flag == 'llm_model_name' else ''}), "
        + ("or check the id, the network, and that the hub has safetensors weights for it (downloads are on; "
           "pickled .bin weights are refused)" if downloads_allowed() else
           f"or set {DOWNLOAD_ENV}=1 to download it from the Hugging Face hub (where the network reaches it)")
    )


def _from_pretrained(loader: Any, name: str, what: str, flag: str, weights: bool = True, **kwargs: Any) -> Any:
    """``loader.from_pretrained(name, local_files_only=True)`` (a hub id may download, safetensors
    only, with ``IL_TOOLKIT_DOWNLOAD_MODELS=1``), turning "not available" into :class:`OfflineModelError`."""
    path = Path(name).expanduser()
    if path.exists() and not path.is_dir():
        raise OfflineModelError(f"{what} {name!r} is a file; pass the directory that holds its config.json")
    source = str(path) if path.is_dir() else name
    try:
        return loader.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:  # missing files: OSError; a path that is no repo id: HFValidationError
        if not path.is_dir() and downloads_allowed():  # not cached: fetch it, safetensors weights only
            try:
                return loader.from_pretrained(source, local_files_only=False,
                                              **({"use_safetensors": True} if weights else {}), **kwargs)
            except (OSError, ValueError) as download_exc:
                raise _offline_error(what, flag, name, download_exc) from download_exc
        if path.is_dir():
            raise OfflineModelError(
                f"{what} directory {name!r} cannot be loaded ({exc}); it must hold a save_pretrained() copy "
                f"(config.json + weights), or pass {flag}={BUILTIN!r}"
            ) from exc
        raise _offline_error(what, flag, name, exc) from exc


def _hf_model_from_config(config_dict: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    data = dict(config_dict)
    model_type = data.pop("model_type")
    return AutoModel.from_config(AutoConfig.for_model(model_type, **data))


def _hf_config_dict(model: nn.Module) -> dict[str, Any]:
    data = model.config.to_dict()
    data.pop("_name_or_path", None)
    data.pop("transformers_version", None)
    data.pop("architectures", None)
    return json.loads(json.dumps(data, default=str))


# -- vision ------------------------------------------------------------------------------
class BuiltinVision(nn.Module):
    """One :class:`SmallCNN` per camera: ``(B, C, H, W)`` uint8/float -> ``(B, grid**2, width_out)``."""

    def __init__(self, cameras: Sequence[str], out_dim: int, grid: int, width: int, channels: int = 3) -> None:
        super().__init__()
        self.nets = nn.ModuleDict({c: SmallCNN(channels, out_dim, grid=grid, width=width) for c in cameras})
        self.out_dim = out_dim

    def forward(self, camera: str, images: torch.Tensor) -> torch.Tensor:
        return self.nets[camera](to_float_image(images) * 2.0 - 1.0)


class HFVision(nn.Module):
    """A Hugging Face vision model shared by every camera: images are resized to its input
    size and normalised with its mean/std; ``last_hidden_state`` ``(B, N, F)`` (or a CNN's
    ``(B, F, h, w)`` pooled to ``grid x grid``) are the tokens."""

    def __init__(self, model: nn.Module, image_size: int | None, mean: Sequence[float], std: Sequence[float],
                 grid: int, freeze: bool) -> None:
        super().__init__()
        self.model = model
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.freeze = freeze
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
        with torch.no_grad():
            probe = torch.zeros(1, len(list(mean)), image_size or 32, image_size or 32)
            self.out_dim = int(self._features(probe).shape[-1])

    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        module = getattr(self.model, "vision_model", self.model)  # CLIP/SigLIP text+vision models
        out = module(pixel_values=pixels)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        if hidden.dim() == 4:
            hidden = self.pool(hidden).flatten(2).transpose(1, 2)
        return hidden

    def forward(self, camera: str, images: torch.Tensor) -> torch.Tensor:
        pixels = to_float_image(images)
        if self.image_size is not None and tuple(pixels.shape[-2:]) != (self.image_size, self.image_size):
            pixels = nn.functional.interpolate(pixels, size=(self.image_size, self.image_size), mode="bilinear",
                                               align_corners=False)
        pixels = (pixels - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self._features(pixels)


def _vision_preprocessing(directory: Path | None, model: nn.Module) -> tuple[int | None, list[float], list[float]]:
    config = model.config
    vision_config = getattr(config, "vision_config", None) or config
    image_size = getattr(vision_config, "image_size", None)
    channels = int(getattr(vision_config, "num_channels", 3))
    mean, std = [0.5] * channels, [0.5] * channels
    if directory is not None and (directory / "preprocessor_config.json").is_file():
        pre = json.loads((directory / "preprocessor_config.json").read_text())
        mean, std = list(pre.get("image_mean", mean)), list(pre.get("image_std", std))
    return (int(image_size) if image_size else None), mean, std


def build_vision(name: str, cameras: Sequence[str], *, out_dim: int, grid: int, width: int,
                 freeze: bool, stored: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any] | None]:
    """The vision encoder for ``name`` and, for a Hugging Face model, what a checkpoint must
    store to rebuild it without the original files (``stored`` is that, when restoring)."""
    if name == BUILTIN:
        return BuiltinVision(cameras, out_dim, grid, width), None
    if stored is not None:
        model = _hf_model_from_config(stored["hf_config"])
        return HFVision(model, stored["image_size"], stored["mean"], stored["std"], grid, freeze), stored
    from transformers import AutoModel

    model = _from_pretrained(AutoModel, name, "vision model", "vision_model_name")
    directory = Path(name).expanduser() if Path(name).expanduser().is_dir() else None
    image_size, mean, std = _vision_preprocessing(directory, model)
    info = {"hf_config": _hf_config_dict(model), "image_size": image_size, "mean": mean, "std": std}
    return HFVision(model, image_size, mean, std, grid, freeze), info


# -- language ----------------------------------------------------------------------------
class HFTokenizer:
    """A Hugging Face tokenizer behind :class:`ByteTokenizer`'s call signature."""

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        tokenizer.padding_side = "right"
        self.tokenizer = tokenizer

    def __call__(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        out = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def builtin_language_config(hidden_size: int, n_layers: int, n_heads: int, vocab_size: int) -> Any:
    """A tiny Llama configuration (RoPE, RMSNorm, SwiGLU) for the built-in language model."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=n_layers, num_attention_heads=n_heads, num_key_value_heads=n_heads,
        max_position_embeddings=512, tie_word_embeddings=False, attention_dropout=0.0,
    )


def build_language(name: str, *, hidden_size: int, n_layers: int, n_heads: int, freeze: bool,
                   stored: dict[str, Any] | None = None) -> tuple[nn.Module, Any, dict[str, Any] | None]:
    """``(language model, tokenizer, stored info)`` for ``name``; the model maps
    ``inputs_embeds (B, L, H)`` + ``attention_mask (B, L)`` to ``last_hidden_state (B, L, H)``."""
    from transformers import AutoModel, AutoTokenizer, LlamaModel

    if name == BUILTIN:
        tokenizer = ByteTokenizer()
        config = builtin_language_config(hidden_size, n_layers, n_heads, tokenizer.vocab_size)
        config._attn_implementation = "sdpa"
        return LlamaModel(config), tokenizer, None
    tokenizer = HFTokenizer(_from_pretrained(AutoTokenizer, name, "language model tokenizer", "llm_model_name", weights=False))
    if stored is not None:
        model = _hf_model_from_config(stored["hf_config"])
    else:
        model = _from_pretrained(AutoModel, name, "language model", "llm_model_name")
        stored = {"hf_config": _hf_config_dict(model)}
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    return model, tokenizer, stored
