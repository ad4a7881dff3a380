# Ferry developer and CI entry points. `make test` is the single command CI runs.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

CARGO ?= cargo

.PHONY: setup build lint lint-infra test-cdk test demo demo-copy bench package deploy

## setup: install every tool the tests and the demo need (idempotent, quick when done)
setup:
	scripts/setup

## build: compile every crate and target of the workspace
build:
	$(CARGO) build --workspace --all-targets

## lint: formatting, clippy with warnings denied, documentation with warnings denied, the
## bench's Python modules importing each other without a circle, the modules of the engine
## and of the distribution crate importing only their own layer or lower ones, without a
## circle, and the distribution crate depending on no other crate of the workspace
## (ARCHITECTURE.md), and the dependency policy of deny.toml (licences, bans, sources:
## scripts/check-deps)
lint:
	$(CARGO) fmt --all -- --check
	python3 bench/check_imports.py --quiet
	python3 scripts/check-layers
	python3 scripts/check-deps --self-test
	python3 scripts/check-deps --quiet
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# Libraries, binaries and examples: with the examples in, the dependencies resolve with the
	@# dev-dependencies' features, as for clippy above, so rustdoc reuses clippy's checked
	@# dependencies instead of checking all of them a second time. (`ferry-cli`'s binary is
	@# named `ferry`, like the engine's library, and would overwrite its pages.)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --exclude ferry-cli --no-deps --lib --bins --examples

## lint-infra: offline checks of the infrastructure templates, when there are any
lint-infra:
	@if [ -x scripts/lint-infra ]; then \
		scripts/lint-infra; \
	elif [ -f scripts/lint-infra ]; then \
		bash scripts/lint-infra; \
	else \
		echo "lint-infra: skipped (scripts/lint-infra not there yet)"; \
	fi

## test-cdk: the CDK constructs (infra/cdk): unit, parity with the SAM templates, cdk-nag,
## cdk synth of the example app, cfn-lint and checkov on its templates (offline, no AWS credentials)
test-cdk:
	scripts/test-cdk

## test: setup, lints, then the whole test suite against real local services
test: setup lint lint-infra test-cdk
	@# Every target of the workspace at once, with the features the test builds use (a
	@# `-p ferry-cli` build resolves features for that package alone and rebuilds part of
	@# the dependency graph a second time): the tests then only link.
	$(CARGO) build --workspace --all-targets
	@if command -v cargo-nextest >/dev/null 2>&1; then \
		echo "test: cargo nextest run --workspace"; \
		$(CARGO) test --workspace --doc; \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		echo "test: cargo-nextest absent, using cargo test"; \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## demo: the whole pipeline locally: ECR-shaped registries, moto ECR/SQS/EventBridge/STS, pushes,
## events, dispatch and replicate until the queues drain, a result table, skopeo verification
demo: setup
	scripts/pipeline-demo

## demo-copy: two local registries, a signed multi-arch image, `ferry copy`, skopeo verification
demo-copy: setup
	scripts/demo

## bench: performance comparison (scripts/bench, when it exists)
bench:
	@if [ -f scripts/bench ]; then \
		bash scripts/bench; \
	else \
		echo "bench: scripts/bench is not there yet"; \
	fi

## package: build the Lambda functions with cargo lambda and the SAM application (FERRY_ARCH=arm64|x86_64)
package:
	scripts/package

## deploy: sam deploy (guided the first time; FERRY_CONFIG=ferry.json supplies the replication config)
deploy:
	scripts/deploy
