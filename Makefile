# TIM-Net: common commands. Everything runs inside .venv at the repository root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EPOCHS ?= 100
PROTOCOL ?= kfold
EMODB_DIR ?= ../shared/corpora/emodb-2s

.PHONY: setup test lint demo bench bench-emodb figures clean-demo

$(VENV)/.installed: requirement.txt requirement-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirement-dev.txt
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check Code MFCC tests benchmarks

figures: setup
	$(PY) Code/figures.py architecture --output Fig/architecture.png
