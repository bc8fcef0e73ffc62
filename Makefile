# Two set-up commands: `make demo` runs the demo, `make test` runs the tests.
# Each creates .venv and installs the project on first use (and again when
# pyproject.toml changes).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The npm packages of the web checks (glTF-Validator, three.js, playwright-core, and
# iwer, the WebXR emulator the VR page's browser test uses as a headset),
# installed once from the committed lock file; Chromium itself is a system
# package (.ci/run installs it). Without npm the browser/validator tests skip.
WEB    := export/web
WEB_STAMP := $(WEB)/node_modules/.installed
# CPU machines take the CPU build of torch (a bare `torch` pulls a multi-GB CUDA
# build); on a GPU machine run `make TORCH=torch ...` to take the CUDA build.
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: demo test test-fast bench native clean-cache help web

help:
	@echo "make demo       run the demo (builds the default database on first use)"
	@echo "make test       run the whole test suite"
	@echo "make test-fast  the suite without tests marked slow"
	@echo "make bench      run the benchmarks and write BENCHMARKS.md"
	@echo "make native     build the native runtime core (export/native) into build/native"
	@echo "                (the tests build it too; .ci/run installs cmake, g++ and mono first)"

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(WEB_STAMP): $(WEB)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(WEB) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "npm not found: the glTF validator and browser tests will skip (Debian: apt-get install nodejs npm chromium)"; \
	fi

web: $(WEB_STAMP)

demo: $(STAMP)
	$(VENV)/bin/anim demo

test: $(STAMP) web
	$(PY) -m pytest -q

test-fast: $(STAMP) web
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m bench

native:
	cmake -S export/native -B build/native -DCMAKE_BUILD_TYPE=Release
	cmake --build build/native

clean-cache:
	rm -rf mocap_data/.cache out/databases
