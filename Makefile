# Curbside: `make demo` and `make test` do everything on a fresh Debian machine.

SWIFT        ?= swift
SWIFT_FLAGS  ?=
SYSTEM_PACKAGES := libsodium-dev libssl-dev libsqlite3-dev pkg-config openssl age python3 python3-venv e2fsprogs mount postgresql

# Root runs apt-get itself; anyone else goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build test interop demo vectors check-vectors bench reliability fuzz audit clean

all: build

## deps: install the Debian packages the build needs, only those missing.
deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "make deps: missing$$missing and no apt-get here; install them with your package manager" >&2; exit 1; \
	  fi; \
	  echo "make deps: installing$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "make deps: all system packages present"; \
	fi

## build: compile every target, tests included.
build: deps
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests

## test: install, build and run every test: the Swift suites, the fault runs, then the independent Python implementation.
test: build
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --skip FaultRunTests --skip NetworkFaultTests
	@# The fault runs (relay processes killed, power cuts, abuse) load the machine, and the network-fault trials
	@# bound this process's memory growth, which suites running beside them would blur: alone, after the rest.
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter NetworkFaultTests
	$(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter FaultRunTests
	$(MAKE) --no-print-directory interop-only

## interop: the Python implementation in interop/ against spec/vectors and, live, against the Swift build.
interop: build interop-only

interop-only:
	CURBSIDE_BIN=$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/curbside CURBSIDE_REQUIRE_LIVE=1 ./interop/run.sh

## demo: the main job end to end on this machine.
demo: deps
	$(SWIFT) build $(SWIFT_FLAGS) --product curbside
	CURBSIDE=$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/curbside ./scripts/demo.sh

## vectors: regenerate spec/vectors/*.json (deterministic; a test checks the files match).
vectors: deps
	$(SWIFT) run $(SWIFT_FLAGS) curbside-vectors spec/vectors

# Speed beside the raw limits and peer servers (mosquitto, nginx, openssl), in release mode; never part of `test`.
bench: deps
	./bench/run.sh

# Fault runs against a live relay, with counts; exits non-zero on any loss. `make test` runs a short version.
# CRASH_CONSULTS, CRASH_KILLS and CRASH_SEED change the crash runs (defaults: 10,000 consults, 20 SIGKILLs): one relay
# on SQLite, then two relay processes on one PostgreSQL database; then the failover run (FAILOVER_CONSULTS, default
# 10,000, FAILOVER_SEED: the PostgreSQL primary killed under load, its synchronous standby promoted); three
# power cuts follow (ext4 in a loop device; skipped without root), then the control that must lose consults, then
# the abuse run (ABUSE_FRAMES random and mutated frames, default 10,000; slow-loris; login brute force), then the
# network-fault trials (FAULT_TRIALS per operation, default 50: 200 in all; make test runs 10 per operation).
reliability: deps
	$(SWIFT) build -c release --product curbside
	$(SWIFT) build -c release --product curbside-faults
	bin=$$($(SWIFT) build -c release --show-bin-path); \
	"$$bin/curbside-faults" crash --curbside "$$bin/curbside" --senders 4 --consults $${CRASH_CONSULTS:-10000} \
	    --kills $${CRASH_KILLS:-20} $${CRASH_SEED:+--seed $$CRASH_SEED} && \
	"$$bin/curbside-faults" crash --postgres --relays 2 --curbside "$$bin/curbside" --senders 4 \
	    --consults $${CRASH_CONSULTS:-10000} --kills $${CRASH_KILLS:-20} $${CRASH_SEED:+--seed $$CRASH_SEED} && \
	"$$bin/curbside-faults" failover --curbside "$$bin/curbside" --relays 2 --senders 4 \
	    --consults $${FAILOVER_CONSULTS:-10000} $${FAILOVER_SEED:+--seed $$FAILOVER_SEED} && \
	for run in 1 2 3; do "$$bin/curbside-faults" power-cut --curbside "$$bin/curbside" --seconds 3 || exit 1; done && \
	"$$bin/curbside-faults" power-cut --control --curbside "$$bin/curbside" --seconds 3 && \
	"$$bin/curbside-faults" abuse --curbside "$$bin/curbside" --frames $${ABUSE_FRAMES:-10000} --slow-loris 24
	$(SWIFT) build $(SWIFT_FLAGS) --build-tests
	CURBSIDE_FAULT_TRIALS=$${FAULT_TRIALS:-50} $(SWIFT) test $(SWIFT_FLAGS) --skip-build --filter NetworkFaultTests

# libFuzzer harnesses for the decoders of untrusted bytes (fuzz/), FUZZ_SECONDS each (default 300); seeded from
# spec/vectors; exits non-zero if any input crashed one (kept in fuzz/crashes/).
fuzz: deps
	./fuzz/run.sh

# The relay's TLS against sslyze (Mozilla intermediate) and testssl.sh, with a weak openssl s_server as the control.
audit: deps
	$(SWIFT) build $(SWIFT_FLAGS) --product curbside
	CURBSIDE=$$($(SWIFT) build $(SWIFT_FLAGS) --show-bin-path)/curbside ./scripts/audit.sh

clean:
	rm -rf .build
