"""The tokenizer of the inference backends (stance.models.tokenizer) against transformers' own."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import transformers

from stance.data.loaders import challenge_rows, contrast_test_rows, extra_training_rows, seed_rows
from stance.models import encoder, hf
from stance.models.tokenizer import TokenizerFile

ODD = ["", " ", "Ünïcödé — “quotes” … emoji 🙂 and\ttabs\nnewlines", "x" * 3000, "The   spaces.", "中文字符 test",
       "<s> looks like a special token </s>", "[CLS] [SEP] [PAD]"]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rows = seed_rows() + extra_training_rows("all") + challenge_rows() + contrast_test_rows()
    return [r["text"] for r in rows] + ODD


@pytest.mark.parametrize("name", ["minilm", "mpnet"])
def test_same_ids_and_padding_as_transformers(name, corpus):
    folder = hf.encoder_dir(name)
    reference = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ours = TokenizerFile(folder)
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id) == (
        reference.cls_token_id, reference.sep_token_id, reference.pad_token_id)
    expected = reference(corpus, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    got = ours(corpus, add_special_tokens=False)["input_ids"]
    assert len(got) == len(corpus)
    assert [i for i in range(len(corpus)) if got[i] != expected[i]] == []
    # the chunks and padded batches the backends feed to the encoder are the same too
    chunks_ref, owners_ref = encoder.tokenize_chunks(reference, corpus[-40:], 64)
    chunks, owners = encoder.tokenize_chunks(ours, corpus[-40:], 64)
    assert (chunks, owners) == (chunks_ref, owners_ref)
    padded = ours.pad({"input_ids": chunks[:7]})
    padded_ref = reference.pad({"input_ids": chunks[:7]}, padding=True, return_tensors="np")
    for key in ("input_ids", "attention_mask"):
        assert padded[key].dtype == np.int64
        assert np.array_equal(padded[key], padded_ref[key].astype(np.int64))


def test_refuses_what_it_does_not_do(tmp_path):
    ours = encoder.packaged_tokenizer("minilm")
    with pytest.raises(ValueError, match="never truncates"):
        ours(["a"], truncation=True)
    with pytest.raises(ValueError, match="NumPy"):
        ours.pad({"input_ids": [[1, 2]]}, return_tensors="pt")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        TokenizerFile(tmp_path)
    assert ours.pad({"input_ids": []})["input_ids"].shape == (0, 0)


def test_scoring_on_onnx_imports_neither_torch_nor_transformers():
    # the shipped transformer runs its recorded default backend (ONNX); its tokenizer used to pull in
    # transformers and torch, seconds at the start of every process
    code = ("import sys, stance\n"
            "model = stance.load('transformer')\n"
            "assert model.predict(['Scanning every message breaks encryption.'])[0] in stance.LABELS\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
