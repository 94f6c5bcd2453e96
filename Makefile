# Ironbowl — the two commands: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/platform:$(CURDIR)

.PHONY: run test setup system-packages browser migrate lint typecheck check pytest bench messages helm clean-data

run: setup messages migrate ## Set up, migrate, load the demo and start web + worker + beat
	$(PY) manage.py seed_demo
	$(PY) manage.py serve

test: setup browser messages helm lint typecheck check pytest ## Lint, type-check, Django checks, tests

setup: $(STAMP) system-packages

# Debian packages the product uses: gettext (translations), espeak-ng (speech), ffmpeg (ffprobe).
SYSTEM_COMMANDS := msgfmt espeak-ng ffprobe
system-packages:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq gettext espeak-ng ffmpeg; \
	  else \
	    echo "Missing:$$missing. Install the Debian packages: gettext espeak-ng ffmpeg" >&2; exit 1; \
	  fi; \
	fi

# The browser tests (tests/e2e) drive Debian's Chromium with Playwright (whose own browser
# download cannot be used here), and their Chinese screenshots need a CJK font. Only `make test`
# needs them, not `make run`.
browser:
	@if ! command -v chromium >/dev/null || [ ! -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq chromium fonts-noto-cjk; \
	  else \
	    echo "Missing: chromium or a CJK font (the browser tests need them). Install the Debian packages: chromium fonts-noto-cjk" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,inference]"
	touch $(STAMP)

messages: setup
	$(PY) manage.py compilemessages --ignore=.venv --ignore=.cache -v 0

migrate: setup
	$(PY) manage.py migrate --noinput -v 0

helm:
	bash scripts/fetch-helm.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy platform/ironbowl tenants scheduling avatars inference

check: setup
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

pytest: setup
	$(PY) -m pytest

bench: setup messages ## Benchmarks; writes bench-report/report.{md,json}
	$(PY) -m tests.benchmarks.run

clean-data: ## Forget the local database, broker files and secret key
	rm -rf data
