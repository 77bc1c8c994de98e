"""Inference backends for a packaged sentence encoder: torch or ONNX Runtime, fp32 or int8 weights.

Four backends run the same frozen encoder (:mod:`stance.models.hf`):

* ``torch-fp32``: the Hugging Face model as loaded; the only backend used for training, and the
  only one whose embeddings go into the on-disk cache (:mod:`stance.models.encoder`);
* ``torch-int8``: a copy with dynamically quantised ``Linear`` layers
  (``torch.ao.quantization.quantize_dynamic``);
* ``onnx-fp32``: the encoder exported to ONNX (``torch.onnx.export``) and run by ONNX Runtime;
* ``onnx-int8``: that graph with dynamically quantised ``MatMul`` weights
  (``onnxruntime.quantization.quantize_dynamic``).

Both int8 recipes leave each layer's feed-forward output projection (3072 -> 768 in mpnet) in
fp32 and quantise weights per channel (ONNX: 7-bit, ``reduce_range``): measured on the seed and contrast-test sentences with
all-mpnet-base-v2, quantising every projection gave embeddings whose cosine to fp32 had a median
of 0.70 (plain int8) and 0.87 (7-bit), because the inputs of that projection (after GELU) have a
wide range that one per-batch activation scale cannot hold, and 8-bit weights saturate the
AVX2 int16 accumulators (``vpmaddubsw``) on CPUs without VNNI. With it left in fp32 and
per-channel 7-bit weights the median cosine was 0.990 (``experiments/results/backends``).

The exported graphs live beside the weights they come from (``<encoder folder>/onnx/``, or
``<store>/encoders/<name>-onnx/`` for an encoder packaged read-only in site-packages) with a
``provenance.json`` that records the source weights' sha256, the exporter and library versions,
the recipe and each graph's sha256; loading checks both hashes, and an ONNX graph is data (no
code runs when it is loaded). A missing or outdated export is made on first use (about 30 s for
mpnet); ``stance install-encoder`` makes it up front.

Which backend a saved model uses by default is decided by measurement
(``experiments/backends.py``): the recorded choice is :data:`CHOICE_FILE`, read by
:func:`shipped_default`. torch and onnxruntime are imported inside the functions.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from stance import paths
from stance.models import hf

BACKENDS: tuple[str, ...] = ("torch-fp32", "torch-int8", "onnx-fp32", "onnx-int8")
TRAINING_BACKEND = "torch-fp32"
ONNX_OPSET = 17
PROVENANCE_FILE = "provenance.json"
GRAPH_FILES = {"onnx-fp32": "model.onnx", "onnx-int8": "model-int8.onnx"}
# bump when the export or the int8 recipe changes: an older export is then made again
EXPORT_RECIPE = "torch.onnx.export(dynamo=False)+ort-dynamic-int8(per-channel,7-bit,ffn-output-fp32):v1"
# the backend choice made by experiments/backends.py, shipped with the package
CHOICE_FILE = "backend_choice.json"


class ExportMismatchError(ValueError):
    """An ONNX export on disk does not match its recorded provenance (edited, truncated or foreign)."""


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`BACKENDS`; raises ``ValueError`` listing them otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


@lru_cache(maxsize=1)
def _choice() -> dict[str, Any]:
    try:
        text = resources.files("stance.models").joinpath(CHOICE_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return json.loads(text)


def shipped_default(encoder_name: str) -> str:
    """The backend a saved model over encoder ``encoder_name`` uses unless told otherwise.

    The choice :data:`CHOICE_FILE` records for that encoder (the fastest backend that passed the
    accuracy rule of ``experiments/backends.py``), else :data:`TRAINING_BACKEND`.
    """
    chosen = _choice().get("default", {}).get(encoder_name, TRAINING_BACKEND)
    return check_backend(chosen)


# ---------------------------------------------------------------- torch int8


def int8_excluded(module_name: str) -> bool:
    """Whether a ``Linear`` stays fp32 in the int8 recipes: the feed-forward output projection of a
    layer (``encoder.layer.N.output.dense`` in BERT/MPNet naming; see the module docstring)."""
    return module_name.endswith("output.dense") and ".attention." not in module_name


def quantize_torch(model: Any) -> Any:
    """An int8 copy of ``model`` (``torch.ao.quantization.quantize_dynamic``, per-channel weight
    scales) whose ``Linear`` layers are quantised except :func:`int8_excluded` ones; ``model``
    itself is left unchanged."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not int8_excluded(name)}
    with warnings.catch_warnings():
        # torch 2.13 flags eager-mode quantisation as deprecated in favour of torchao (not a
        # dependency here); the kernels still work
        warnings.simplefilter("ignore")
        twin = quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig), dtype=torch.qint8)
    return twin.eval()


# ---------------------------------------------------------------- ONNX export


def onnx_dir(name: str) -> Path:
    """Where encoder ``name``'s ONNX graphs live (see the module docstring)."""
    folder = hf.encoder_dir(name)
    if name == "minilm":  # inside site-packages, which may be read-only
        return paths.encoders_dir() / f"{name}-onnx"
    return folder / "onnx"


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {package: version(package) for package in ("torch", "transformers", "onnx", "onnxruntime")}


def export_onnx(name: str, target: Path | None = None) -> Path:
    """Export encoder ``name`` to ONNX (fp32 and int8 graphs) with a ``provenance.json``; returns the folder.

    Inputs ``input_ids`` and ``attention_mask`` (int64, ``(batch, tokens)``, both axes dynamic),
    output ``last_hidden_state`` (float32, ``(batch, tokens, hidden)``). Written to a temporary
    folder and moved into place, so a killed export never leaves a half-written graph that looks
    complete. Raises :class:`~stance.models.hf.EncoderNotInstalledError` when the weights are absent.
    """
    import shutil
    import tempfile

    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = target or onnx_dir(name)
    tokenizer, model = hf.from_pretrained(hf.encoder_dir(name), "AutoModel")
    model.eval()

    class LastHidden(torch.nn.Module):  # a plain tensor output instead of a ModelOutput
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    example = tokenizer(["An example sentence to trace.", "Short."], padding=True, return_tensors="pt")
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "last_hidden_state": {0: "batch", 1: "tokens"}}
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        fp32, int8 = work / GRAPH_FILES["onnx-fp32"], work / GRAPH_FILES["onnx-int8"]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and deprecation notices about the TorchScript exporter
            torch.onnx.export(LastHidden(model), (example["input_ids"], example["attention_mask"]), str(fp32),
                              input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                              dynamic_axes=dynamic, opset_version=ONNX_OPSET, dynamo=False)
        graph = onnx.load(str(fp32), load_external_data=False).graph
        excluded = [node.name for node in graph.node if node.op_type == "MatMul"
                    and int8_excluded(node.name.replace("/", ".").rsplit(".MatMul", 1)[0])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=excluded)
        provenance = {
            "encoder": name,
            "source_weights_sha256": hf.weights_sha256(name),
            "recipe": EXPORT_RECIPE,
            "opset": ONNX_OPSET,
            "versions": _versions(),
            "int8_fp32_nodes": len(excluded),
            "graphs": {backend: {"file": file, "sha256": hf.file_sha256(work / file)}
                       for backend, file in GRAPH_FILES.items()},
        }
        (work / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already after the rename
    return target


def export_current(name: str, folder: Path) -> bool:
    """Whether ``folder`` holds an export of the current weights made by the current recipe."""
    try:
        provenance = json.loads((folder / PROVENANCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (provenance.get("recipe") == EXPORT_RECIPE
            and provenance.get("source_weights_sha256") == hf.weights_sha256(name)
            and all((folder / file).exists() for file in GRAPH_FILES.values()))


def ensure_onnx(name: str) -> Path:
    """The folder of encoder ``name``'s current ONNX export, exporting it first if absent or outdated."""
    folder = onnx_dir(name)
    if not export_current(name, folder):
        warnings.warn(f"exporting encoder {name!r} to ONNX into {folder} (once; about 30 s for mpnet)",
                      stacklevel=2)
        export_onnx(name, folder)
    return folder


def graph_path(name: str, backend: str) -> Path:
    """The checked ONNX graph of encoder ``name`` for ``backend`` (``onnx-fp32``/``onnx-int8``).

    Raises :class:`ExportMismatchError` when the file's sha256 differs from its provenance record
    (delete the folder, or run ``stance install-encoder``, to export again).
    """
    folder = ensure_onnx(name)
    record = json.loads((folder / PROVENANCE_FILE).read_text())["graphs"][backend]
    path = folder / record["file"]
    if hf.file_sha256(path) != record["sha256"]:
        raise ExportMismatchError(
            f"{path} does not match the sha256 in {folder / PROVENANCE_FILE}; delete {folder} to export again"
        )
    return path


# ---------------------------------------------------------------- runners


@lru_cache(maxsize=4)
def _torch_int8(name: str) -> Any:
    from stance.models.encoder import packaged_encoder

    return quantize_torch(packaged_encoder(name)[0])


@lru_cache(maxsize=8)
def _session(name: str, backend: str, threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads sleep instead of spinning: on shared cores a spinning thread takes time from the
    # others (measured 10% faster with spinning off under load, interleaved, benchmarks on 2 cores)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(graph_path(name, backend)), options,
                                        providers=["CPUExecutionProvider"])


def pooled_batches(name: str, backend: str, threads: int | None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function from one padded batch to its mean-pooled, L2-normalised embeddings.

    Input: ``input_ids`` and ``attention_mask`` as int64 arrays ``(batch, tokens)``; output float32
    ``(batch, hidden)``. ``threads``: intra-op threads (``None``: the library's default; torch's
    own count is given back after each call, see :func:`stance.models.encoder.torch_threads`).
    Raises ``ValueError`` for an unknown backend.
    """
    from stance.models import encoder

    check_backend(backend)
    if backend.startswith("torch"):
        network = encoder.packaged_encoder(name)[0] if backend == "torch-fp32" else _torch_int8(name)
        return encoder.torch_pooled(network, threads)
    session = _session(name, backend, threads)

    def run_onnx(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    return run_onnx
