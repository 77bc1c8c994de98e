"""Evaluate a grid of models by the protocol; write experiments/results/<grid>/ (JSON, Markdown, PNGs)."""

import argparse

from stance.evaluation.runner import run_evaluation
from stance.evaluation.specs import GRIDS

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--grid", choices=sorted(GRIDS), default="main")
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the group 5-fold")
    args = parser.parse_args()
    print(run_evaluation(args.grid, args.repeats))
