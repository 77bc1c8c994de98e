"""Does int8 dynamic quantisation cost the fine-tuned transformer macro-F1? Leave-one-document-out, fp32 vs int8.

Per leave-one-document-out fold of the seed sentences (``stance.evaluation.protocol.lodo_folds``), the
``minilm-finetune`` spec gets its learning rate chosen on the fold's training rows as in the
evaluation (``stance.evaluation.protocol.tune``), then is fitted once on those rows plus the supplement
(training seed ``stance.evaluation.specs.SEED``); that SAME fitted model then predicts the held-out document twice,
as is (fp32) and through :meth:`TransformerModel.quantized` (int8 Linear layers). The pooled
out-of-fold predictions give one macro-F1 for each, so the difference is the quantisation alone,
not training noise. The int8 path may be recommended only if the drop is at most ``MAX_DROP``.

Writes ``benchmarks/results/quantisation.json`` and ``quantisation.md``. Five fine-tunings and two
tuning fits per fold: about half an hour on 2 cores. Run: ``python benchmarks/quantisation.py``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MAX_DROP = 0.01  # the rule: int8 only if LODO macro-F1 stays within 0.01 of fp32


def run() -> dict[str, Any]:
    """Fit every LODO fold once, predict its test document in fp32 and int8; pooled metrics."""
    from stance.data.loaders import seed_rows, supplement_rows
    from stance.evaluation.metrics import compute_metrics
    from stance.evaluation.protocol import lodo_folds, tune
    from stance.evaluation.specs import SEED, TRANSFORMER_SPECS
    from stance.labels import LABEL_TO_ID

    spec = TRANSFORMER_SPECS[0]
    rows = seed_rows()
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    extra = supplement_rows()
    extra_texts, extra_labels = [r["text"] for r in extra], [r["label"] for r in extra]
    y = np.array([LABEL_TO_ID[label] for label in labels])
    docs, groups = np.array([r["doc"] for r in rows]), np.array([r["group"] for r in rows])
    folds = lodo_folds(docs, groups)
    load_before = os.getloadavg()[0]
    proba = {"fp32": np.full((len(rows), 3), np.nan), "int8": np.full((len(rows), 3), np.nan)}
    per_fold = []
    started = time.perf_counter()
    for fold in folds:
        fit_start = time.perf_counter()
        # the learning rate is chosen as in the evaluation, on the fold's training rows only
        params, _ = tune(spec, texts, labels, docs, groups, fold.train, (extra_texts, extra_labels, [""] * len(extra_texts)), "lodo", SEED)
        model = spec.build(SEED, **params).fit([texts[i] for i in fold.train] + extra_texts,
                                               [labels[i] for i in fold.train] + extra_labels)
        fit_seconds = time.perf_counter() - fit_start
        test = [texts[i] for i in fold.test]
        timings = {}
        for name, variant in (("fp32", model), ("int8", model.quantized())):
            t0 = time.perf_counter()
            proba[name][fold.test] = variant.predict_proba(test)
            timings[name] = time.perf_counter() - t0
        agree = float(np.mean(proba["fp32"][fold.test].argmax(1) == proba["int8"][fold.test].argmax(1)))
        per_fold.append({"fold": fold.name, "chosen_params": params, "test_sentences": len(test),
                         "fit_seconds": round(fit_seconds, 1),
                         "label_agreement": agree, "predict_seconds": {k: round(v, 3) for k, v in timings.items()}})
        print(f"{fold.name}: {len(test)} test sentences, fit {fit_seconds:.0f} s, fp32/int8 label agreement "
              f"{agree:.3f}", flush=True)
    metrics = {name: compute_metrics(y, p) for name, p in proba.items()}
    drop = metrics["fp32"]["macro_f1"] - metrics["int8"]["macro_f1"]
    return {
        "spec": spec.name,
        "params": spec.params,
        "grid": spec.grid,
        "seed": SEED,
        "folds": len(folds),
        "sentences": len(rows),
        "supplement_sentences": len(extra),
        "macro_f1": {name: m["macro_f1"] for name, m in metrics.items()},
        "accuracy": {name: m["accuracy"] for name, m in metrics.items()},
        "per_class_f1": {name: {k: v["f1"] for k, v in m["per_class"].items()} for name, m in metrics.items()},
        "macro_f1_drop": drop,
        "max_drop": MAX_DROP,
        "int8_acceptable": bool(drop <= MAX_DROP),
        "label_agreement": float(np.mean(proba["fp32"].argmax(1) == proba["int8"].argmax(1))),
        "max_abs_probability_difference": float(np.abs(proba["fp32"] - proba["int8"]).max()),
        "per_fold": per_fold,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def markdown(result: dict[str, Any]) -> str:
    """A self-contained Markdown summary of :func:`run`'s result."""
    f1, verdict = result["macro_f1"], "within" if result["int8_acceptable"] else "beyond"
    drop = result["macro_f1_drop"]
    change = f"int8 scores {abs(drop):.4f} {'lower' if drop > 0 else 'higher'}" if drop else "no change"
    lines = [
        "# int8 dynamic quantisation: leave-one-document-out macro-F1",
        "",
        "| weights | LODO macro-F1 | accuracy |",
        "|---|---|---|",
        *[f"| {name} | {f1[name]:.4f} | {result['accuracy'][name]:.4f} |" for name in ("fp32", "int8")],
        "",
        f"Macro-F1 drop from fp32 to int8: {result['macro_f1_drop']:+.4f} ({change}; {verdict} the largest drop "
        f"allowed, {result['max_drop']}); "
        f"labels agree on {result['label_agreement']:.1%} of the {result['sentences']} sentences, largest "
        f"probability difference {result['max_abs_probability_difference']:.3f}. "
        + ("int8 may be used (opt-in: `stance.load(..., backend='torch-int8')`)." if result["int8_acceptable"]
           else "int8 is not recommended; the default stays fp32."),
        "",
        f"Spec `{result['spec']}` {json.dumps(result['params'])}, grid {json.dumps(result['grid'])} tuned per "
        f"fold on its training rows (chosen: {', '.join(json.dumps(f['chosen_params']) for f in result['per_fold'])}), "
        f"seed {result['seed']}: each of the "
        f"{result['folds']} folds fitted once on its training sentences + {result['supplement_sentences']} "
        "supplement sentences; the same fitted model predicts the held-out document in fp32 and int8 "
        "(`torch.ao.quantization.quantize_dynamic` on every `Linear`). "
        f"Made by `python benchmarks/quantisation.py` in {result['seconds']:.0f} s on {result['cpus']} CPUs, "
        f"one-minute load average {result['load_average_1min'][0]} before, {result['load_average_1min'][1]} after.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    """Run, print and write the results; ``--render`` only rewrites the Markdown from the saved JSON."""
    if "--render" in sys.argv[1:]:
        result = json.loads((RESULTS / "quantisation.json").read_text(encoding="utf-8"))
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        result = run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if "--render" not in sys.argv[1:]:
        (RESULTS / "quantisation.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "quantisation.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
