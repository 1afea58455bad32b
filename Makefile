# Build/test entry points for the loopbreaker.notion collection.
#
#   make venv      create/refresh .venv from pyproject.toml (dependency group "test")
#   make browser   install Debian's chromium and firefox-esr for the browser tests if missing (root; idempotent)
#   make test      everything CI runs (scripts/run-tests: unit, sanity, lint, molecule)
#   make unit      pytest: tests/unit and tests/integration (first makes sure the headless browsers are
#                  there for the fleet report's and browser_data's browser tests: scripts/ensure-browsers)
#   make sanity    ansible-test sanity, offline (scripts/sanity)
#   make lint      ansible-lint (production profile, .ansible-lint), antsibull-docs
#                  lint-collection-docs (plugin docs and references) and antsibull-changelog lint
#   make molecule  molecule test for every scenario under molecule/
#   make bench     benchmarks: cost of a module call against 1, 10, 50 users; the ladder over BENCH_HOSTS
#                  simulated hosts against a no-op bridge call per host (numbers, not pass/fail on time)
#   make lab       scripts/run_lab.py (starts the lab's services: squid, a Notion stand-in, an intercepting proxy)
#   make lab-deps  install what the lab's services need from Debian (squid, openssl) when missing
#   make build     build the collection tarball into .cache/dist
#   make ee        execution environment build context in .cache/ee/context (ansible-builder create)
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
# Tests, the lab and molecule reach nothing but loopback: diagnose's probes refuse any other name
# or address (module_utils/_netprobe.py). Real runs do not set it.
export LOOPBREAKER_LOOPBACK_ONLY := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MOLECULE_GLOB := molecule/*/molecule.yml

.PHONY: venv test unit browser bench sanity lint molecule lab lab-deps build ee clean

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

test: venv
	scripts/run-tests

browser:
	scripts/ensure-browsers

unit: venv browser lab-deps
	pytest $(wildcard tests/unit tests/security tests/integration tests/benchmarks) --benchmark-disable $(PYTEST_ARGS)

BENCH_HOSTS ?= 20 100 500
bench: venv
	pytest tests/benchmarks --benchmark-only --benchmark-columns=min,mean,max,rounds $(PYTEST_ARGS)
	$(VENV)/bin/python scripts/bench_ladder.py $(BENCH_HOSTS)

sanity: venv
	scripts/sanity $(SANITY_ARGS)

lint: venv
	ansible-lint $(LINT_ARGS)
	antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs all --disallow-unknown-collection-refs .
	antsibull-changelog lint

molecule: venv
	@scenarios=$$(compgen -G '$(MOLECULE_GLOB)' || true); \
	if [[ -z "$$scenarios" ]]; then \
	  echo "molecule: no scenarios match $(MOLECULE_GLOB); nothing to run"; \
	else \
	  echo "molecule: scenarios:" $$scenarios; \
	  molecule test --all $(MOLECULE_ARGS); \
	fi

lab: venv lab-deps
	$(VENV)/bin/python scripts/run_lab.py $(LAB_ARGS)

# The lab and its tests run real squid and openssl; on a fresh Debian machine (CI runs as root)
# they come from apt. Elsewhere, install them yourself.
LAB_COMMANDS := squid openssl
lab-deps:
	@missing=$$(for c in $(LAB_COMMANDS); do command -v $$c >/dev/null || [[ -x /usr/sbin/$$c ]] || echo $$c; done); \
	if [[ -n "$$missing" ]]; then \
	  if [[ $$(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then \
	    echo "==> installing $$missing from Debian"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "lab-deps: missing $$missing (install them: apt-get install $$missing)" >&2; exit 1; \
	  fi; \
	fi

build: venv
	ansible-galaxy collection build --force --output-path $(CACHE)/dist .

ee: venv
	scripts/ee-context

clean:
	rm -rf $(VENV) $(CACHE) tests/output .ansible .pytest_cache .hypothesis .benchmarks
