"""An encoder's tokenizer read with the ``tokenizers`` library alone, for the inference backends.

transformers' fast tokenizers wrap the same ``tokenizer.json`` that :class:`TokenizerFile` reads;
the wrapper costs an import of transformers and, through it, torch: seconds at the start of every
process that scores with the ONNX backends, which need neither. :class:`TokenizerFile` offers the
small part of the transformers interface that :mod:`stance.models.encoder` uses (token ids
without special tokens, the ``[CLS]``/``[SEP]`` ids, right padding to NumPy arrays) and gives the
same ids as ``transformers.AutoTokenizer`` for both packaged encoders (tested on every labelled
sentence in the repository).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _token_text(value: Any) -> str | None:
    """A special token as its text (``special_tokens_map.json`` holds a string or a dict with ``content``)."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


class TokenizerFile:
    """``tokenizer.json`` of a Hugging Face tokenizer folder, with its special tokens.

    Raises ``FileNotFoundError`` when the folder has no ``tokenizer.json`` and ``ValueError`` when
    its padding side is not ``right`` (the only one this project's batching expects) or a declared
    special token is not in the vocabulary.
    """

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"no tokenizer.json in {folder}")
        self._tokenizer = Tokenizer.from_file(str(path))
        # ids are cut into chunks by the caller; padding is done per batch by pad()
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        special: dict[str, Any] = {}
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            if (folder / name).exists():
                special.update(json.loads((folder / name).read_text()))
        if special.get("padding_side", "right") != "right":
            raise ValueError(f"{folder}: padding side {special['padding_side']!r} is not supported (right only)")
        ids: dict[str, int | None] = {}
        for role in ("cls", "sep", "bos", "eos", "pad"):
            text = _token_text(special.get(f"{role}_token"))
            ids[role] = None if text is None else self._tokenizer.token_to_id(text)
            if text is not None and ids[role] is None:
                raise ValueError(f"{folder}: the {role} token {text!r} is not in the vocabulary")
        self.cls_token_id, self.sep_token_id = ids["cls"], ids["sep"]
        self.bos_token_id, self.eos_token_id = ids["bos"], ids["eos"]
        self.pad_token_id = ids["pad"] if ids["pad"] is not None else 0

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False, truncation: bool = False,
                 verbose: bool = False) -> dict[str, list[list[int]]]:
        """``{"input_ids": [ids of each text]}``; never truncates (``truncation=True`` raises ``ValueError``)."""
        if truncation:
            raise ValueError("TokenizerFile never truncates; split long text into chunks instead")
        encoded = self._tokenizer.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        return {"input_ids": [list(e.ids) for e in encoded]}

    def pad(self, features: dict[str, Sequence[Sequence[int]]], padding: bool = True,
            return_tensors: str = "np") -> dict[str, np.ndarray]:
        """Right-pad ``features["input_ids"]`` to the longest: int64 ``input_ids`` and ``attention_mask``
        arrays ``(batch, tokens)``. Only ``padding=True`` and ``return_tensors="np"`` are supported
        (``ValueError`` otherwise)."""
        if padding is not True or return_tensors != "np":
            raise ValueError("TokenizerFile pads to the longest and returns NumPy arrays only")
        rows = features["input_ids"]
        longest = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), longest), self.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}
