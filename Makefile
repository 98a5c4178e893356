# of3c — see README.md. Every target sets itself up (scripts/setup.sh is idempotent).
SHELL := /bin/bash
GO ?= go
PY := .venv/bin/python
export PATH := $(CURDIR)/.bin:$(PATH)

.PHONY: setup build test run vet gotest pytest conformance bench fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o bin/of3c ./cmd/of3c

vet: setup
	$(GO) vet ./...

gotest: setup
	$(GO) test -count=1 ./...

pytest: setup
	$(PY) -m pytest -q models/of3/tests

conformance: build
	$(GO) run ./tests/conformance/cmd

# Everything CI checks: vet, Go tests (unit, race on the MLX executor, golden,
# parity), Python fixture tests, ONNX node conformance.
test: setup vet gotest pytest conformance

run: build
	@bash scripts/main_job.sh

bench: build
	@echo "benchmarks: see docs/BENCHMARKS.md"

clean:
	rm -rf bin .bin .mlx
