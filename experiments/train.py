"""Train the models the selection rule chose on all data; save them under models/ and write models/DEFAULT."""

import argparse

from stance.evaluation.shipping import train_shipped

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", nargs="?", choices=["all", "baseline", "transformer"], default="all")
    args = parser.parse_args()
    for name, seconds in train_shipped(args.which).items():
        print(f"trained {name} in {seconds:.1f} s")
