# `make train`: set everything up, then train with the default recipe into runs/<date>-<time>.
# `make test`: set everything up, then run the whole test suite (`pytest --all`).
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

# Every test, as CI runs them: the slow ones, those on the real dataset, those in headless Chromium
# (report.html's pages) and those that start PostgreSQL servers of their own (Debian's postgresql:
# initdb, pg_ctl). A plain `$(BIN)/pytest` leaves those out and takes a few minutes.
test: setup
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq postgresql)
	$(BIN)/pytest --all

bench: setup
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/bench.py
