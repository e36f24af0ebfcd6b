# The targets people and CI both call. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# llama-cpp-python builds from source: skip what llmbatch never uses (examples,
# tests, tools, the C++ server, llava, OpenMP) — about half the build time.
# pip caches the built wheel, so later installs on the same machine take seconds.
# Not -march=native: a virtual machine can report AVX-512 it then traps on
# (SIGILL in libggml-cpu at the first completion), and a cached wheel may move to
# another machine. AVX2 + FMA + F16C runs on every x86-64 server of the last decade.
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_OPENMP=OFF \
	-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: demo test install install-test check lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[local]'

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -c tests/sdk-versions.txt -e '.[local,test,ray,gemini,dev]'
	# The HTML report is checked in headless Chromium (Debian's package).
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the report's browser test will be skipped"

## The main job: classify the example reviews and print the metrics table.
demo: install
	$(BIN)/llmbatch run examples/reviews.jsonl --task examples/sentiment.toml --out reviews-sentiment.jsonl

## Install the test needs, then the linter, the type checks and the whole suite (what CI runs).
test: install-test
	$(MAKE) --no-print-directory check
	$(BIN)/python -m pytest -q

# The type check: strict over src/ (pyproject.toml's [tool.mypy]), then relaxed over tests/
# and bench/ (tests/mypy.ini says what is relaxed and why). tests/report/conftest.py is a
# second top-level "conftest" beside tests/conftest.py, so it is checked in a run of its own.
check:
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy --config-file tests/mypy.ini
	$(BIN)/mypy --config-file tests/mypy.ini tests/report/conftest.py

lint: install-test
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

typecheck: install-test
	$(BIN)/mypy
	$(BIN)/mypy --config-file tests/mypy.ini
	$(BIN)/mypy --config-file tests/mypy.ini tests/report/conftest.py

clean:
	rm -rf $(VENV) .llmbatch .pytest_cache build dist
