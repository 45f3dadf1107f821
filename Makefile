# The two commands a newcomer needs:  `make run`  and  `make test`.
# Both create .venv and install pinned dependencies (constraints.txt) on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= configs/sample_hesbaye.yaml

.PHONY: run test install bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/agrisat run $(CONFIG)

test: $(STAMP)
	$(BIN)/ruff check agrisat pipelines tests scripts benchmarks
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_zonal.py --size 2048 --dates 24 --data benchmarks/out/tile2048

clean:
	rm -rf runs .pytest_cache
