"""A built-in byte-level tokenizer for the built-in VLA language model.

No tokenizer can be downloaded here, and the built-in language model is trained from
scratch, so it reads UTF-8 bytes: ids 0-255 are bytes, then ``<pad>``, ``<bos>``, ``<eos>``.
Any text encodes (nothing is out of vocabulary), which is what lets an unseen instruction
still produce tokens the model can read.
"""

from __future__ import annotations

from typing import Sequence

import torch

PAD_ID = 256
BOS_ID = 257
EOS_ID = 258


class ByteTokenizer:
    """UTF-8 bytes -> ids; ``vocab_size = 259``."""

    vocab_size = 259
    pad_token_id = PAD_ID
    bos_token_id = BOS_ID
    eos_token_id = EOS_ID

    def encode(self, text: str, max_length: int) -> list[int]:
        """``[<bos>, bytes..., <eos>]`` cut to ``max_length`` ids (the ``<eos>`` is kept)."""
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for <bos> and <eos>), got {max_length}")
        body = list(text.encode("utf-8"))[: max_length - 2]
        return [BOS_ID, *body, EOS_ID]

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def __call__(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask``, both ``(B, L)`` with ``L`` the
        longest encoding in the batch (at most ``max_length``)."""
        encoded = [self.encode(t, max_length) for t in texts]
        length = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(encoded), length), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e)
            mask[row, : len(e)] = 1
        return {"input_ids": ids, "attention_mask": mask}
