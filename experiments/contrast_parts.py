"""Measure the held-back contrast parts (writers F and G) against the shipped training set:
writes experiments/results/contrast_parts.{json,md} (stance.evaluation.ablation)."""

import json

from stance import paths
from stance.evaluation.ablation import ablation_markdown, held_back_ablation
from stance.evaluation.runner import results_path

if __name__ == "__main__":
    result = held_back_ablation(paths.project_root() / "experiments" / "results" / "full" / "selection.json")
    results_path("contrast_parts.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    markdown = ablation_markdown(result)
    results_path("contrast_parts.md").write_text(markdown)
    print(markdown)
