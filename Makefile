# mvdp developer entry points. CI runs `.ci/run`, which runs `make test`.
#
#   make deps    install the Debian packages, Rust components and Python tools (target/k8s-venv) the build and tests need
#   make build   release build of the mvdp binary
#   make test    deps, rustfmt check, clippy (warnings are errors), all tests
#   make demo    deps, build, then `mvdp demo` (needs root)
#   make bench   mvdp bench: mvdp vs the kernel's macvlan on a namespace rig (root), results in benches/results
#   make bench-scale   mvdp bench --scale: 4, 256 and 4096 endpoints added over the control socket (root), results in benches/results
#   make bench-hotpath   criterion bench of parse + classify
#   make soak    DURATION=10m of mixed traffic through a running daemon (root): RSS, drops, UMEM in flight -> benches/results/soak-latest.{csv,png}
#   make fuzz    cargo fuzz: every target for FUZZ_SECONDS (default 300) each; `make test` runs them 30 s each
#   make clean   cargo clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Privileged end-to-end tests build whole namespace rigs and run the daemon;
# two at a time is what a 2-core machine takes without timeouts.
TEST_THREADS ?= 2

DEB_PACKAGES := clang llvm libelf-dev libbpf-dev m4 pkg-config iproute2 \
	zlib1g-dev make ethtool netsniff-ng iputils-ping fonts-dejavu-core \
	iperf3 sockperf prometheus tmux bpftool \
	docker.io podman containernetworking-plugins runc busybox-static python3-venv dnsmasq-base
RUST_COMPONENTS := rustfmt clippy

# apt-get needs root; CI is root, a developer's shell may not be.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help deps deps-debian deps-rust deps-python deps-fuzz build test fmt-check clippy cargo-test fuzz fuzz-smoke demo bench bench-scale bench-hotpath soak clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

deps: deps-debian deps-rust deps-python

deps-debian:
	@echo "==> deps: checking Debian packages: $(DEB_PACKAGES)"
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		[ "$$(dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null)" = "install ok installed" ] \
			|| missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then \
		echo "==> deps: all Debian packages present"; \
	else \
		echo "==> deps: installing:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		$(SUDO) apt-get update -q; \
		$(SUDO) apt-get install -y -q $$missing; \
	fi

deps-rust:
	@echo "==> deps: checking Rust components: $(RUST_COMPONENTS)"
	@for c in $(RUST_COMPONENTS); do \
		if $(CARGO) "$$( [ "$$c" = rustfmt ] && echo fmt || echo "$$c" )" --version >/dev/null 2>&1; then \
			echo "==> deps: $$c present"; \
		elif command -v rustup >/dev/null 2>&1; then \
			echo "==> deps: rustup component add $$c"; \
			rustup component add "$$c"; \
		else \
			echo "error: $$c is missing and rustup is not installed" >&2; exit 1; \
		fi; \
	done

# tests/kubernetes.rs validates config/kubernetes/ against Kubernetes'
# schemas offline with PyPI's kubernetes-validate (it bundles them), in a
# venv of Debian's python3 under target/.
K8S_VENV := target/k8s-venv
K8S_VALIDATE_VERSION := 1.37.0

deps-python: deps-debian
	@if [ -x $(K8S_VENV)/bin/kubernetes-validate ] && \
		[ "$$($(K8S_VENV)/bin/kubernetes-validate --version)" = "$(K8S_VALIDATE_VERSION)" ]; then \
		echo "==> deps: kubernetes-validate $(K8S_VALIDATE_VERSION) present in $(K8S_VENV)"; \
	else \
		echo "==> deps: kubernetes-validate $(K8S_VALIDATE_VERSION) into $(K8S_VENV)"; \
		/usr/bin/python3 -m venv $(K8S_VENV); \
		$(K8S_VENV)/bin/pip install -q kubernetes-validate==$(K8S_VALIDATE_VERSION); \
	fi

build:
	@echo "==> build: $(CARGO) build --release --locked"
	$(CARGO) build --release --locked

test: deps fmt-check clippy cargo-test fuzz-smoke
	@echo "==> test: all passed"

fmt-check:
	@echo "==> test: $(CARGO) fmt --check"
	$(CARGO) fmt --all -- --check

clippy:
	@echo "==> test: $(CARGO) clippy (warnings are errors)"
	$(CARGO) clippy --all-targets --locked -- -D warnings

# The end-to-end suites that run the daemon, run a second time with every
# frame through the workers (the first run has the kernel fast path on, the
# default; tests/modes.rs, tests/fastpath.rs, tests/integrity.rs and
# tests/teardown.rs choose their tiers themselves).
TIER_SUITES := dataplane vlan isolation host_shim parent_filter dashboard control restart faults cni podman scale ipv6 mtu multicast

cargo-test:
	@echo "==> test: $(CARGO) test ($(TEST_THREADS) threads; privileged tests skip loudly without root/AF_XDP)"
	$(CARGO) test --locked -- --test-threads=$(TEST_THREADS)
	@echo "==> test: again with [dataplane] fast_path = \"off\": $(TIER_SUITES)"
	MVDP_TEST_FAST_PATH=off $(CARGO) test --locked $(addprefix --test ,$(TIER_SUITES)) -- --test-threads=$(TEST_THREADS)

# Fuzzing (tests/fuzz, a crate of its own that only the nightly toolchain
# builds): frame parse + classify, config parsing and validation, control
# requests, DHCP messages. New inputs go to target/fuzz-corpus/TARGET, started from the
# seeds in tests/fuzz/seeds/TARGET; a crash leaves its input in
# tests/fuzz/artifacts/TARGET and fails the run. The targets are safe Rust,
# so they build without AddressSanitizer (quicker to build and to run).
FUZZ_DIR := tests/fuzz
FUZZ_TARGETS := frame worker config control dhcp
FUZZ_SECONDS ?= 300

deps-fuzz:
	@if ! $(CARGO) +nightly --version >/dev/null 2>&1; then 		echo "==> deps: rustup toolchain install nightly"; 		rustup toolchain install nightly --profile minimal; 	fi
	@if ! $(CARGO) fuzz --version >/dev/null 2>&1; then 		echo "==> deps: cargo install cargo-fuzz"; 		$(CARGO) install cargo-fuzz --locked; 	fi

fuzz: deps deps-fuzz
	@for t in $(FUZZ_TARGETS); do 		mkdir -p target/fuzz-corpus/$$t; 		echo "==> fuzz: $$t for $(FUZZ_SECONDS) s"; 		$(CARGO) +nightly fuzz run --fuzz-dir $(FUZZ_DIR) -O -a -s none $$t 			target/fuzz-corpus/$$t $(FUZZ_DIR)/seeds/$$t -- 			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 			| tee target/fuzz-$$t.log | grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units)' || true; 		if grep -qE 'SUMMARY|panicked|deadly signal' target/fuzz-$$t.log; then 			grep -E 'panicked|SUMMARY|Failing input|artifact' -A2 target/fuzz-$$t.log >&2; 			echo "==> fuzz: $$t found a crash (target/fuzz-$$t.log)" >&2; exit 1; 		fi; 	done
	@echo "==> fuzz: no crash"

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

demo: deps build
	@echo "==> demo: ./target/release/mvdp demo"
	./target/release/mvdp demo

bench: deps build
	@echo "==> bench: ./target/release/mvdp bench --out benches/results"
	./target/release/mvdp bench --out benches/results

bench-scale: deps build
	@echo "==> bench: ./target/release/mvdp bench --scale --out benches/results"
	./target/release/mvdp bench --scale --out benches/results

# Soak (tests/soak.rs, an ignored test): mixed traffic for DURATION (90s,
# 10m, 1h) while the daemon's RSS, drops by reason and UMEM frames in flight
# are sampled; asserts memory stays flat and frames in flight within the
# UMEM. FAST_PATH=off runs it through the workers alone.
DURATION ?= 10m
FAST_PATH ?= on

soak: deps
	@echo "==> soak: $(DURATION) of mixed traffic ($(CARGO) test --release --test soak -- --ignored)"
	MVDP_SOAK_DURATION=$(DURATION) MVDP_TEST_FAST_PATH=$(FAST_PATH) \
		$(CARGO) test --release --locked --test soak -- --ignored --nocapture

bench-hotpath:
	@echo "==> bench-hotpath: $(CARGO) bench --bench classify"
	$(CARGO) bench --locked --bench classify

clean:
	@echo "==> clean: $(CARGO) clean"
	$(CARGO) clean
