"""Train the models the selection rule chose on all data into the model store ($STANCE_HOME: the Makefile's
models/), write its DEFAULT, and copy the default model into the package (stance/packaged/) for the wheel."""

import argparse

from stance.evaluation.shipping import train_shipped
from stance.models.store import package_default

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("which", nargs="?", choices=["all", "baseline", "transformer"], default="all")
    args = parser.parse_args()
    for name, seconds in train_shipped(args.which).items():
        print(f"trained {name} in {seconds:.1f} s")
    # the wheel carries the default model (small enough: a TF-IDF model)
    print(f"packaged the default model into {package_default()}")
