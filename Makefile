# `make train`: set everything up, then train with the default recipe into runs/<date>-<time>.
# `make test`: set everything up, then run the whole test suite.
VENV ?= .venv
BIN := $(VENV)/bin
DEBIAN_DATA := /usr/share/datasets/fashion-mnist

.PHONY: setup data train test bench

# torch is pinned to the CPU build this kind of machine has on disk; pyproject.toml keeps a range.
$(BIN)/fmnist: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The Debian package when the machine can install it, otherwise a download from the official mirrors.
data: $(BIN)/fmnist
	@test -f $(DEBIAN_DATA)/train-images-idx3-ubyte.gz \
	  || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	  || $(BIN)/fmnist download

setup: $(BIN)/fmnist data

train: setup
	$(BIN)/fmnist train

# Headless Chromium renders report.html in tests/test_report.py; tests/test_tune_workers.py starts PostgreSQL
# servers of its own (Debian's postgresql: initdb, pg_ctl).
test: setup
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq postgresql)
	$(BIN)/pytest

bench: setup
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench.py
