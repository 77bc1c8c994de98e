"""Are the shipped models' sentence explanations faithful? ERASER comprehensiveness on the contrast test set.

For each shipped model, every contrast-test sentence is explained (``model.attributions``, k = 5);
then the words of its top-k spans are deleted, and, as the control, as many words drawn at random
(seed 0) from the same sentence. The table gives the mean drop of the predicted label's probability
for both and the mean paired difference, each with a 95 % bootstrap interval over sentences
(:mod:`stance.evaluation.faithfulness`). The baseline is also explained by occlusion, the method
every other family uses, to compare the two methods on one model. Writes
``benchmarks/results/explain_faithfulness.md``. Run: ``python benchmarks/explain_faithfulness.py``.
"""

import os
import platform
import time
from pathlib import Path

from stance.api import load
from stance.data.loaders import contrast_test_rows
from stance.evaluation.faithfulness import comprehensiveness, mean_ci
from stance.models.base import StanceModel

KS = (1, 3, 5)
SEED = 0
OUT = Path(__file__).resolve().parent / "results" / "explain_faithfulness.md"


def _fmt(stats: tuple[float, float, float]) -> str:
    mean, low, high = stats
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    rows = contrast_test_rows()
    texts, contexts = [r["text"] for r in rows], [r["context"] for r in rows]
    lines = ["| model | method (weight unit) | k | sentences | words deleted (mean) | drop, explained words "
             "| drop, random words | difference | explain s |", "|---|---|---|---|---|---|---|---|---|"]
    runs = [("baseline", "exact TF-IDF contributions (logit margin)", False),
            ("baseline", "occlusion (probability drop)", True),
            ("transformer", "occlusion over the ensemble (probability drop)", False)]
    for name, method, occlude in runs:
        model = load(name)
        model.threads = 2  # torch threads for the encoder member; the 2 cores here
        start = time.perf_counter()
        # the base-class method is the occlusion every non-linear family uses
        explained = (StanceModel.attributions(model, texts, contexts, max(KS)) if occlude
                     else model.attributions(texts, contexts, max(KS)))
        seconds = time.perf_counter() - start
        for k in KS:
            result = comprehensiveness(model, texts, contexts, k=k, seed=SEED, explained=explained)
            lines.append(f"| `{name}` | {method} | {k} | {len(result.top)} (of {len(texts)}) | "
                         f"{result.deleted.mean():.2f} | {_fmt(mean_ci(result.top))} | {_fmt(mean_ci(result.random))} | "
                         f"{_fmt(mean_ci(result.top - result.random))} | {seconds:.1f} |")
        print(lines[-1], flush=True)
    load_average = os.getloadavg()[0]
    text = "\n".join([
        "# Faithfulness of sentence explanations (ERASER comprehensiveness)", "",
        *lines, "",
        f"Contrast test set ({len(texts)} sentences, no context). Drops are in probability of the label the model "
        "predicts for the intact sentence (higher: the deleted words mattered more); a sentence with no word "
        "pushing its label is left out. Intervals: 95 % percentile bootstrap over sentences (2,000 resamples, "
        f"seed 0); the difference is paired per sentence. Random words: seed {SEED}, as many as the explained "
        "spans cover. `explain s`: time to explain all sentences once (k = 5; smaller k are its prefixes), "
        f"on {os.cpu_count()} CPUs shared with other work (load average {load_average:.1f} at the end), "
        f"Python {platform.python_version()}. Made by `python benchmarks/explain_faithfulness.py`.", ""])
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
