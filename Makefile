# Two commands for a new user: `make run` and `make test`. Everything else is a building block.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Pinned with hashes, every transitive package included; `make lock` regenerates both from
# requirements*.txt (the readable lists) after a change there.
LOCKS := requirements.lock requirements-dev.lock
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	--no-strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: setup run test lint format migrate pytest check-deploy clean lock schema
.PHONY: browser-deps nginx-deps
.PHONY: serve fuzz fuzz-ci
.PHONY: eval-retrieval eval-replay eval-answers

# Re-install only when a requirements file or a lock changed since the last install. Installs the
# lock (exact versions, hashes checked), never a fresh resolution of requirements*.txt; then builds
# the local model's int8-arithmetic copy beside the venv from the installed wheel (no download).
$(STAMP): requirements.txt requirements-dev.txt $(LOCKS)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	$(BIN)/python -m rag.providers.quantized_model
	@touch $(STAMP)

setup: $(STAMP)

# Re-resolve the locks after requirements*.txt changed (keeps every pin that still fits).
lock: setup
	$(PIP_COMPILE) --output-file requirements.lock requirements.txt
	$(PIP_COMPILE) --output-file requirements-dev.lock requirements-dev.txt

# The OpenAPI schema as a file (docs/openapi.yaml); a test fails when it is stale.
schema: setup
	ENV_FILE= DEBUG=false SECRET_KEY=schema-only $(BIN)/python manage.py spectacular --validate --file docs/openapi.yaml

migrate: setup
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput

# The address is HOST and PORT (default 127.0.0.1:8000, from the environment or .env); links in
# emails follow it unless PUBLIC_BASE_URL is set.
run: setup
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py populate_documents --if-empty
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SECRET_KEY=lint-only $(BIN)/mypy .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

pytest: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test: setup browser-deps nginx-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Debian's Chromium and chromedriver for the browser test (tests/browser), only when missing. Never
# fails: without apt-get, root or sudo, or a reachable mirror it says so and the test is skipped
# (on CI, where CI is set, that test fails instead).
BROWSER_PACKAGES := chromium chromium-driver
browser-deps:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	note() { echo "Note: $$1; the browser test will be skipped (install $(BROWSER_PACKAGES) yourself)."; exit 0; }; \
	command -v apt-get >/dev/null 2>&1 || note "apt-get is not available"; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then \
	  command -v sudo >/dev/null 2>&1 || note "not root and no sudo"; \
	  sudo="sudo"; [ -t 0 ] || sudo="sudo -n"; \
	fi; \
	apt_install() { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); }; \
	echo "Installing $(BROWSER_PACKAGES) for the browser test"; \
	apt_install || { $$sudo apt-get update -q && apt_install; } || note "apt-get could not install $(BROWSER_PACKAGES)"

# Debian's nginx (the request-buffering proxy of `make serve`, deploy/nginx.conf.template) and wrk
# (bench/bench_proxy.py), only when missing. Never fails, like browser-deps: without apt-get, root
# or sudo, or a mirror it says so; `make serve` then refuses to start (SERVE_PROXY=none runs
# gunicorn alone) and the proxy tests are skipped (on CI, where CI is set, they fail instead).
NGINX_PACKAGES := nginx-light wrk
nginx-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then command -v wrk >/dev/null 2>&1 && exit 0; fi; \
	note() { echo "Note: $$1; install $(NGINX_PACKAGES) yourself (make serve needs nginx)."; exit 0; }; \
	command -v apt-get >/dev/null 2>&1 || note "apt-get is not available"; \
	sudo=""; if [ "$$(id -u)" != 0 ]; then \
	  command -v sudo >/dev/null 2>&1 || note "not root and no sudo"; \
	  sudo="sudo"; [ -t 0 ] || sudo="sudo -n"; \
	fi; \
	apt_install() { $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(NGINX_PACKAGES); }; \
	echo "Installing $(NGINX_PACKAGES) for make serve and the proxy tests"; \
	apt_install || { $$sudo apt-get update -q && apt_install; } || note "apt-get could not install $(NGINX_PACKAGES)"

# Production stack of one host (nginx + gunicorn + runscheduler, DEBUG off); needs SECRET_KEY and REDIS_URL.
# Its data lives in var/serve (VAR_DIR), apart from make run's var/.
serve: setup nginx-deps
	scripts/serve.sh

# Schema fuzzing (schemathesis) against a throwaway server: long run, and the bounded one CI runs.
fuzz: setup
	scripts/fuzz.sh full

fuzz-ci: setup
	scripts/fuzz.sh ci

# Retrieval quality on public documentation (Flask, Scrapy, Celery sdists from PyPI; needs network
# once) and on the help-centre sets: hit@1, hit@3, MRR@3, nDCG@10 per split and mode. See README.
eval-retrieval: setup
	scripts/eval_retrieval.sh

# Recorded rankings fused again under other choices, in seconds (rag/eval/replay.py): record them with
# `EVAL_RECORD=1 make eval-retrieval`, then e.g. `make eval-replay REPLAY_ARGS="--variant default
# --variant second=0.1 --split dev"` (var/eval/replay-history/ after EVAL_HISTORY=1: REPLAY_DIR).
eval-replay: setup
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py eval_replay $${REPLAY_DIR:-var/eval/replay}/*.json $(REPLAY_ARGS)

# Answer quality on rag/eval/answers (its own knowledge base in var/eval/answers-kb): one summary
# line per split. `make eval-answers ANSWERS_ARGS="--split test -v"` adds each question's failures.
eval-answers: setup
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py eval_answers $(ANSWERS_ARGS)

clean:
	rm -rf $(VENV) var staticfiles
