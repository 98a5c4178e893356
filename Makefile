# of3c — see README.md. Every target sets itself up (scripts/setup.sh is idempotent).
SHELL := /bin/bash
GO ?= go
PY := .venv/bin/python
export PATH := $(CURDIR)/.bin:$(PATH)

# MLX=cuda installs MLX's CUDA 13 build (mlx-cuda-13) instead of the CPU one
# (`make setup MLX=cuda`, `make run MLX=cuda`, `make test MLX=cuda`); MLX=cpu
# goes back. Unset, the build installed last stays (scripts/setup.sh).
MLX ?=
export MLX

# Binaries built here (bin/of3c, bin/libof3c.so) find libmlx through their
# $ORIGIN-relative RUNPATH (bin/../.mlx/lib); test binaries and `go run`
# programs are linked in a temporary folder, so the targets that run them
# name the checkout's MLX here.
export LD_LIBRARY_PATH := $(CURDIR)/.mlx/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))

.PHONY: setup build lib test run vet gotest pytest conformance bench fuzz docs clean

setup:
	@bash scripts/setup.sh

build: setup
	$(GO) build -o bin/of3c ./cmd/of3c

# The C API (cmd/libof3c/of3c.h) as a shared library; setup builds it too,
# for the Python package.
lib: setup
	$(GO) build -buildmode=c-shared -o bin/libof3c.so ./cmd/libof3c

vet: setup
	$(GO) vet ./...

# One package at a time: on the 2-core CI machine two MLX-heavy test binaries
# JIT-compiling kernels side by side once failed in MLX's compiler launch
# ("popen() failed"), and serial packages cost little (the slow ones are
# single packages).
gotest: setup
	$(GO) test -p 1 -count=1 ./...
	$(GO) test -race -count=1 ./internal/mlx/

pytest: setup
	$(PY) -m pytest -q models/of3/tests python/tests

# ONNX node tests on the reference executor, then through the MLX lowering.
conformance: build
	$(GO) run ./tests/conformance/cmd -gen
	$(GO) run ./tests/conformance/cmd -backend mlx

# Everything CI checks: vet, Go tests (unit, race on the MLX executor, golden,
# parity, the docs checks of ./docs and cmd/of3c), Python fixture tests, ONNX
# node conformance.
test: setup vet gotest pytest conformance

run: build
	@bash scripts/main_job.sh

# Benchmark programs (not tests); the current numbers and their commands are
# in docs/performance.md, the dated runs in docs/notes/.
bench: build
	$(GO) run ./tests/bench/mlxbench
	$(GO) run ./tests/bench/fastcpu
	$(GO) run ./tests/bench/of3bench -repeat 5

# Fuzz every target for FUZZTIME each (seed corpora under */testdata/fuzz run in
# `make test` as ordinary tests; a crasher found here lands there). Minimising
# a new interesting input is capped at FUZZMINTIME: Go's default (60s each)
# would spend a short FUZZTIME minimising instead of fuzzing.
FUZZTIME ?= 30s
FUZZMINTIME ?= 5s
FUZZ_TARGETS := ./graph:FuzzParse ./graph:FuzzInferNode ./graph:FuzzCanonDim \
	./importer:FuzzLoad ./importer:FuzzDecodeTensor ./importer/npy:FuzzRead ./importer/npy:FuzzReadWith \
	./artifact:FuzzDecodeArtifact ./artifact:FuzzDecodeSafetensors ./artifact:FuzzArtifactSections
fuzz: setup
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn ($(FUZZTIME))"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINTIME) || exit 1; done

# Regenerate the generated parts of the docs from the code: docs/cli.md (the
# flag sets) and docs/architecture.md's pass and lowering-path tables. The
# same tests, without -update, fail when the docs are stale.
docs: setup
	$(GO) test -count=1 ./cmd/of3c -run TestCLIDoc -update
	$(GO) test -count=1 ./docs -run TestArchitectureDoc -update

clean:
	rm -rf bin .bin .mlx
