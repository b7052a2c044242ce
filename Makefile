# Two entry points for a fresh machine: `make demo` and `make test`. Both install what is missing.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup data demo test build lint fmt crds check-crds images clean

setup:
	bash scripts/setup.sh

data: setup
	bash scripts/fetch-data.sh

build: setup
	$(CARGO) build --release --workspace

## Train, evaluate, publish and serve on MovieLens 100K; prints metrics and a real recommendation.
demo: data
	$(CARGO) run --release -p recsys -- demo

## Every test, plus formatting, lints and generated-file drift.
test: data
	bash scripts/test.sh

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

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
