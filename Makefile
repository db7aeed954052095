# swift-lm — the two commands: `make run` (the main job) and `make test` (the tests).
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev libsentencepiece-dev pkg-config libedit-dev tmux
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LM := .build/release/lm

.PHONY: run test deps build check-long bench clean

## Installs the Debian packages swift-lm links against, when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	swift build -c release --product lm

## The main job: talk with the bundled Shakespeare model (lm chat; /help lists its commands).
run: build
	$(LM) chat

## The tests (unit, parity against ../shared/fixtures, and the real binary).
test: deps
	swift build --build-tests
	swift test --skip-build

## Benchmarks: speed against the peers (see README "Benchmarks").
bench: build
	$(LM) bench --random gpt2-124m

clean:
	rm -rf .build
