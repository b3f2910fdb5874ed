# TIM-Net: common commands. Everything runs inside .venv at the repository root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EPOCHS ?= 100
PROTOCOL ?= kfold
EMODB_DIR ?= ../shared/corpora/emodb-2s

MAX_FOLDS ?=
DEMO_EPOCHS ?= 50
BENCH_EPOCHS ?= 10

.PHONY: setup test test-slow lint demo bench bench-protocol bench-start bench-inference-batch bench-memory bench-predict bench-extraction bench-emodb bench-deploy bench-cross-corpus figures

$(VENV)/.installed: requirement.txt requirement-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirement-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

# The default suite (within 30 minutes on 2 cores); tests marked slow run in test-slow.
test: setup
	$(PY) -m pytest -q -m "not slow"

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check Code MFCC tests benchmarks

figures: setup
	$(VENV)/bin/timnet figures architecture --output Fig/architecture.png

# The seed's pipeline on a generated corpus, through the real command line: the seed's
# commands, with fewer epochs and the seed's default batch of 64 (512 is meant for the
# 40 000 utterances of INTERSECT; the demo trains on 500).
demo: setup
	$(VENV)/bin/timnet demo-corpus
	$(PY) Code/esd_2_npy.py
	cd MFCC && ../$(PY) mix_data.py
	cd Code && ../$(PY) main.py --mode train --data INTERSECT --split_fold 10 --random_seed 46 --epoch $(DEMO_EPOCHS) --gpu 0 --bidirection --batch_size 64
	cd Code && ../$(PY) main.py --mode test --data ESD_test --split_fold 10 --random_seed 46 --epoch 1_000_000 --gpu 0 --bidirection --batch_size 10

bench: setup
	$(PY) benchmarks/bench_speed.py

# The paper recipe end to end (10 folds x BENCH_EPOCHS), the command line against the plain
# reference driven as the original did; several minutes: make bench-protocol BENCH_EPOCHS=10
bench-protocol: setup
	$(PY) benchmarks/bench_protocol.py --epochs $(BENCH_EPOCHS)

# --help and validation errors, each in a fresh interpreter (median of 7 rounds)
bench-start: setup
	$(PY) benchmarks/bench_start.py

bench-inference-batch: setup
	$(PY) benchmarks/bench_inference_batch.py

bench-memory: setup
	$(PY) benchmarks/bench_memory.py

bench-predict: setup
	$(PY) benchmarks/bench_predict.py

bench-extraction: setup
	$(PY) benchmarks/bench_extraction.py

# Exported models: cold single-file predict, throughput and parity of ONNX / LiteRT against TensorFlow.
bench-deploy: setup
	$(PY) benchmarks/bench_deploy.py

# The paper's recipe (or LOSO) on an EMO-DB folder: make bench-emodb EPOCHS=100 PROTOCOL=loso MAX_FOLDS=1
bench-emodb: setup
	$(PY) benchmarks/bench_emodb.py --emodb_dir $(EMODB_DIR) --epochs $(EPOCHS) --protocol $(PROTOCOL) $(if $(MAX_FOLDS),--max_folds $(MAX_FOLDS))

# Two real corpora (../shared/corpora): EMO-DB-2s <-> RAVDESS cross-corpus (3 seeds), RAVDESS 10-fold and
# group-kfold by actor; hours on 2 cores, resumable: run it again to continue (PART=cross|kfold|group).
PART ?= all
bench-cross-corpus: setup
	$(PY) benchmarks/bench_cross_corpus.py --part $(PART) --epochs $(EPOCHS) $(if $(MAX_FOLDS),--max_folds $(MAX_FOLDS))
