# Build/test entry points for the loopbreaker.notion collection.
#
#   make venv      create/refresh .venv from pyproject.toml (dependency group "test")
#   make browsers  install Debian's chromium for the real-browser test if missing (root only; idempotent)
#   make test      everything CI runs (scripts/run-tests: unit, sanity, lint, molecule)
#   make unit      pytest: tests/unit and tests/integration
#   make sanity    ansible-test sanity, offline (scripts/sanity)
#   make lint      ansible-lint, production profile (.ansible-lint)
#   make molecule  molecule test for every scenario under molecule/
#   make bench     benchmarks: cost of a module call against 1, 10, 50 users (numbers, not pass/fail on time)
#   make lab       scripts/run_lab.py
#   make build     build the collection tarball into .cache/dist
#   make clean     remove .venv, .cache and test output
#
# Every target runs with .venv/bin first on PATH and with Ansible's home, temp
# and config pointed inside the repository, so nothing depends on the user's
# ~/.ansible or ~/.ansible.cfg.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := $(CURDIR)/.venv
CACHE := $(CURDIR)/.cache
STAMP := $(VENV)/.installed.stamp
# .venv/ansible_collections/loopbreaker/notion -> ../../.. (the repository root);
# relative, so it survives moving the checkout.
COLLECTION_LINK := $(VENV)/ansible_collections/loopbreaker/notion

export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(VENV)
export ANSIBLE_HOME := $(CACHE)/ansible-home
export ANSIBLE_LOCAL_TEMP := $(CACHE)/ansible-tmp
# A repository ansible.cfg wins; otherwise an empty one in .cache so that
# ~/.ansible.cfg and /etc/ansible/ansible.cfg are never read.
export ANSIBLE_CONFIG := $(if $(wildcard $(CURDIR)/ansible.cfg),$(CURDIR)/ansible.cfg,$(CACHE)/ansible.cfg)
# Interpreter discovery can pick a broken pyenv shim on these machines; an
# inventory's ansible_python_interpreter still wins over this default.
export ANSIBLE_PYTHON_INTERPRETER ?= $(VENV)/bin/python
export ANSIBLE_NOCOLOR ?= 1
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0
export PYTHONDONTWRITEBYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MOLECULE_GLOB := molecule/*/molecule.yml

.PHONY: venv browsers test unit bench sanity lint molecule lab build clean

venv: $(STAMP) $(COLLECTION_LINK) $(CACHE)/ansible.cfg

$(STAMP): pyproject.toml
	@echo "==> creating/updating $(VENV)"
	[[ -x $(VENV)/bin/python ]] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(VENV)/bin/python -m pip install --quiet --group '$(CURDIR)/pyproject.toml:test'
	touch $@

$(COLLECTION_LINK): | $(STAMP)
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

$(CACHE)/ansible.cfg:
	mkdir -p $(CACHE)/ansible-home $(CACHE)/ansible-tmp
	printf '# empty on purpose: keeps ~/.ansible.cfg out of test runs (see Makefile)\n' > $@

# The real-browser test of browser_data needs Chromium; without it (not root, no apt) that test skips.
browsers:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [[ $$(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing chromium for the real-browser test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
	    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; } \
	    || echo "browsers: could not install chromium; the real-browser test will skip"; \
	else echo "browsers: chromium missing and not root; the real-browser test will skip"; fi

test: venv browsers
	scripts/run-tests

unit: venv browsers
	pytest $(wildcard tests/unit tests/security tests/integration tests/benchmarks) --benchmark-disable $(PYTEST_ARGS)

bench: venv
	pytest tests/benchmarks --benchmark-only --benchmark-columns=min,mean,max,rounds $(PYTEST_ARGS)

sanity: venv
	scripts/sanity $(SANITY_ARGS)

lint: venv
	ansible-lint $(LINT_ARGS)

molecule: venv
	@scenarios=$$(compgen -G '$(MOLECULE_GLOB)' || true); \
	if [[ -z "$$scenarios" ]]; then \
	  echo "molecule: no scenarios match $(MOLECULE_GLOB); nothing to run"; \
	else \
	  echo "molecule: scenarios:" $$scenarios; \
	  molecule test --all $(MOLECULE_ARGS); \
	fi

lab: venv
	$(VENV)/bin/python scripts/run_lab.py $(LAB_ARGS)

build: venv
	ansible-galaxy collection build --force --output-path $(CACHE)/dist .

clean:
	rm -rf $(VENV) $(CACHE) tests/output .ansible .pytest_cache .hypothesis .benchmarks
