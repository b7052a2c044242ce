# Two entry points for a fresh machine: `make demo` and `make test`. Both install what is missing.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup data demo test build lint fmt crds check-crds images clean

setup:
	bash scripts/timed.sh setup bash scripts/setup.sh

data: setup
	bash scripts/timed.sh data bash scripts/fetch-data.sh

build: setup
	$(RELEASE_BUILD)

# One build serves the demo and the tests: the workspace with its test targets, in the release
# profile. (`cargo run -p recsys` would resolve a narrower feature set and rebuild most of the
# dependency graph a second time for `make test`.)
RELEASE_BUILD = $(CARGO) build --release --workspace --tests
RECSYS_BIN = $${CARGO_TARGET_DIR:-target}/release/recsys

## Train, evaluate, publish and serve on MovieLens 100K; prints metrics and a real recommendation.
demo: data
	bash scripts/timed.sh "build (release, workspace and tests)" $(RELEASE_BUILD)
	bash scripts/timed.sh demo $(RECSYS_BIN) demo

## Every test, plus formatting, lints and generated-file drift.
test: data
	bash scripts/timed.sh test bash scripts/test.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	bash scripts/check-boundaries.sh

fmt:
	$(CARGO) fmt --all

## Regenerate crds/*.yaml and the chart's copies from the Rust types.
crds:
	$(CARGO) run --release -p recsys-operator --bin crdgen -- crds charts/recsys-operator/crds

## The operator and data-plane images, tagged as the chart expects (REGISTRY, TAG to override).
images:
	bash scripts/images.sh

clean:
	$(CARGO) clean
