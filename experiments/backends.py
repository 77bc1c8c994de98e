"""Choose the shipped transformer's inference backend by the declared rule (issue 19).

Runs every backend of the shipped model (no retraining) on the challenge set, the contrast test,
the article test and the behavioural suite, times them side by side on lone sentences, and
writes ``experiments/results/backends/backends.{json,md}`` and the package's recorded choice
``stance/models/backend_choice.json`` (read by ``stance.models.backends.shipped_default``).
About 10 minutes on 2 cores. Run: ``make backends``.
"""

import argparse
import json
import platform
from pathlib import Path

from stance import paths
from stance.evaluation.backends import SETS, compare_backends
from stance.models import backends
from stance.models.store import load

CHOICE = Path(backends.__file__).with_name(backends.CHOICE_FILE)


def markdown(result: dict, model: str, sha256: str) -> str:
    sets = result["sets"]
    fp32 = result["backends"][backends.TRAINING_BACKEND]["sentences_per_s"]
    head = ("| backend | sentences/s (median) | rounds (s) | vs torch fp32 | "
            + " | ".join(f"{s} {sets[s]['metric']} (n={sets[s]['n']})" for s in SETS)
            + " | labels as torch fp32 | passes the rule |")
    lines = [head, "|---|---|---|---|" + "---|" * len(SETS) + "---|---|"]
    for name, b in result["backends"].items():
        scores = " | ".join(f"{b['scores'][s]:.3f} ({b['changes'][s]:+.3f})" for s in SETS)
        verdict = "yes" if b["passes"] else "no: " + "; ".join(b["reasons"])
        chosen = " **(default)**" if name == result["chosen"] else ""
        lines.append(f"| `{name}`{chosen} | {b['sentences_per_s']:.1f} | {min(b['round_seconds']):.2f}-"
                     f"{max(b['round_seconds']):.2f} | {b['sentences_per_s'] / fp32:.2f}x | {scores} | "
                     f"{b['agreement']:.1%} | {verdict} |")
    rule = result["rule"]
    speed = result["speed"]
    lines += ["", f"Model `{model}` (sha256 {sha256[:12]}), no retraining. Rule: the fastest backend whose score on "
              f"each set is within {rule['max_score_change']} of torch fp32's and whose labels agree with torch "
              f"fp32's on at least {rule['min_agreement']:.1%} of all {sum(s['n'] for s in sets.values())} sentences "
              f"becomes the default: **{result['chosen']}**. Speed: {speed['sentences']} lone seed sentences, "
              f"{speed['rounds']} interleaved rounds, {speed['threads']} threads, embeddings computed afresh; "
              f"one-minute load average {result['load_average'][0]} before and {result['load_average'][1]} after. "
              f"Python {platform.python_version()}. Made by `make backends` (`python experiments/backends.py`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    model, ref = load(args.model)
    result = compare_backends(model, rounds=args.rounds)
    out = paths.results_dir() / "backends"
    out.mkdir(parents=True, exist_ok=True)
    result["model"] = {"name": ref.name, "sha256": ref.sha256}
    (out / "backends.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result, ref.name, ref.sha256)
    (out / "backends.md").write_text(text)
    encoder = next(m.encoder for m in [model, *getattr(model, "models_", [])] if hasattr(m, "encoder"))
    CHOICE.write_text(json.dumps({
        "default": {encoder: result["chosen"]},
        "measured_on": {"model": ref.name, "sha256": ref.sha256},
        "results": "experiments/results/backends/backends.md",
    }, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
