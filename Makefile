# The README's two commands:
#   make quick   set up everything on a fresh machine, then run the main job
#   make test    set up everything on a fresh machine, then run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.il_toolkit-installed
# pip prints a warning per package for index locations this machine does not have; hide only those.
# (braces: `|| true` must cover grep finding nothing, never a failing pip, which pipefail reports)
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }
# Shared libraries MuJoCo needs for headless rendering (EGL via Mesa's llvmpipe).
APT_PACKAGES := libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri libglvnd0
TEST_APT_PACKAGES := chromium

# $(call apt_install,PACKAGES,WHY): install the missing ones as root, else say how
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing system packages:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		else \
			echo "warning: missing system packages:$$missing ($(2)): sudo apt-get install$$missing"; \
		fi; \
	fi
endef

export WANDB_MODE ?= offline
export MUJOCO_GL ?= egl
export PYGAME_HIDE_SUPPORT_PROMPT := 1

.PHONY: setup system-deps test-deps quick test test-slow wheel-smoke bench clean help

help:
	@echo "make quick      set up (venv, packages, system libraries) and run the main job"
	@echo "make test       set up and run the test suite (what CI runs)"
	@echo "make test-slow  also run the slow learning checks"
	@echo "make wheel-smoke  build the wheel, install it in a fresh venv, run the smoke suite from an empty directory"
	@echo "make bench      run the foundation's benchmark scripts (figures in benchmarks/results/)"

setup: system-deps $(STAMP)

system-deps:
	$(call apt_install,$(APT_PACKAGES),MuJoCo rendering needs them)

# The tests also render the leaderboard page in a headless browser (skipped where it cannot be installed).
test-deps:
	$(call apt_install,$(TEST_APT_PACKAGES),the leaderboard page's browser test needs them)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; il_toolkit needs Python 3.11 (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, on its own line: an exact pin takes the local CPU wheel, a looser one pulls CUDA.
	$(PIP) install -q torch==2.13.0 2>&1 | $(QUIET_PIP)
	$(PIP) install -q -c constraints.txt -e ".[test]" 2>&1 | $(QUIET_PIP)
	$(PY) -c "import il_toolkit, imitation, minari, gym_pusht, mujoco, torch; print('il_toolkit', il_toolkit.__version__, 'installed; torch', torch.__version__)"
	touch $(STAMP)

# The main job: the `quick` benchmark suite (every method on CartPole and PushT state, < 5 min on
# 2 cores); results in output/bench/quick.jsonl, leaderboard (Markdown + HTML + plots) beside it.
quick: setup
	$(PY) -m il_toolkit.bench.cli run quick --results output/bench/quick.jsonl --leaderboard output/bench/quick_leaderboard

test: setup test-deps
	$(PY) -m pytest -q

wheel-smoke: setup
	bash .ci/wheel_smoke.sh

test-slow: setup test-deps
	$(PY) -m pytest -q -m "slow or not slow"

bench: setup
	$(PY) benchmarks/cartpole_bc.py
	$(PY) benchmarks/checkpoint_roundtrip.py
	$(PY) benchmarks/minari_roundtrip.py
	$(PY) benchmarks/cartpole_expert.py

clean:
	rm -rf output $(VENV)
