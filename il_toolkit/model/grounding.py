"""Instruction grounding: which of the goals seen in training an instruction names.

:class:`InstructionGrounder` reads an instruction with the VLA's language model (the built-in
byte-level one trained from scratch by default, or a local ``save_pretrained`` directory / cached
Hugging Face id: :func:`il_toolkit.model.pretrained.build_language`), averages its hidden states
over the tokens and scores each goal of the table it was trained with (``GrounderConfig.goals``,
poses recorded beside the demonstrations). Acting, the goal with the highest score is used
whole, so a grounded goal is exactly a demonstrated one: PushT's success needs the last 2 px.

An empty instruction or one unlike any in training still gets a goal (the most likely one);
:meth:`InstructionGrounder.is_seen` tells the caller to say so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from il_toolkit.config.dataclass_fields import from_known_fields
from il_toolkit.model.pretrained import BUILTIN, build_language


@dataclass(frozen=True)
class GrounderConfig:
    """``goals``: the goal table (K, goal_dim) in the env's units; ``instructions``: those seen in
    training; the rest sizes the built-in language model (a pretrained one brings its own size)."""

    goals: tuple[tuple[float, ...], ...]
    instructions: tuple[str, ...] = ()
    llm_model_name: str = BUILTIN
    hidden_size: int = 64
    layers: int = 2
    n_heads: int = 4
    max_text_tokens: int = 96
    pretrained: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "goals", tuple(tuple(float(x) for x in g) for g in self.goals))
        object.__setattr__(self, "instructions", tuple(self.instructions))
        if len(self.goals) < 1 or len({len(g) for g in self.goals}) != 1:
            raise ValueError(f"goals must be a non-empty table of equal-length poses, got {self.goals}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.update(goals=[list(g) for g in self.goals], instructions=list(self.instructions))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "GrounderConfig":
        return from_known_fields(cls, data)


def augment_instruction(text: str, rng: np.random.Generator, shuffle: float = 0.5, word_dropout: float = 0.1) -> str:
    """``text`` with its words in a random order (probability ``shuffle``) and each word dropped with
    probability ``word_dropout`` (one is always kept): a grounder trained on these cannot lean on the
    wording around the words that name the goal."""
    words = text.split()
    if len(words) < 2:
        return text
    if rng.random() < shuffle:
        words = [words[i] for i in rng.permutation(len(words))]
    kept = [w for w in words if rng.random() >= word_dropout]
    return " ".join(kept or [words[int(rng.integers(len(words)))]])


class InstructionGrounder(nn.Module):
    """Instructions (B strings) -> goal logits (B, K) (module docstring)."""

    def __init__(self, config: GrounderConfig) -> None:
        super().__init__()
        language, self.tokenizer, stored = build_language(
            config.llm_model_name, hidden_size=config.hidden_size, n_layers=config.layers, n_heads=config.n_heads,
            freeze=False, stored=config.pretrained or None)
        if stored and not config.pretrained:
            config = dataclasses.replace(config, pretrained=stored)
        self.config = config
        self.language = language
        width = int(getattr(language.config, "hidden_size", config.hidden_size))
        self.head = nn.Sequential(nn.LayerNorm(2 * width), nn.Linear(2 * width, len(config.goals)))
        self.register_buffer("goals", torch.tensor(config.goals, dtype=torch.float64), persistent=False)

    def forward(self, instructions: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(instructions), self.config.max_text_tokens)
        device = next(self.head.parameters()).device
        mask = tokens["attention_mask"].to(device)
        hidden = self.language(input_ids=tokens["input_ids"].to(device), attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        peak = hidden.masked_fill(weights == 0, float("-inf")).amax(1)
        return self.head(torch.cat([mean, peak], dim=-1))

    @torch.no_grad()
    def ground(self, instructions: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(goal indices (B,), goal poses (B, goal_dim))``: the most likely goal of each instruction."""
        was_training = self.training
        self.eval()
        try:
            index = self(instructions).argmax(-1).cpu().numpy()
        finally:
            self.train(was_training)
        return index, self.goals.cpu().numpy()[index]

    def is_seen(self, instruction: str) -> bool:
        return instruction in self.config.instructions


__all__ = ["GrounderConfig", "InstructionGrounder", "augment_instruction"]
