# make demo: a full rehearsal of an upgrade on the embedded demo overcloud.
# make test: the same set-up, then every test, the notebooks and the docs.
# Both create .venv themselves; nothing outside the checkout is installed
# but the system packages of `make sshfleet`, when they are missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HEAT_VENV ?= .venv-heat
TC_VENV ?= .venv-tripleoclient
STAMP := $(VENV)/.installed

.PHONY: demo demo-ssh test unit docs bench install heat tripleoclient sshfleet clean

install: $(STAMP)

$(STAMP): setup.cfg setup.py requirements-test.txt requirements-nodeps.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e . -r requirements-test.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Heat for the Heat-source tests, in a venv of its own (its pins clash with
# ours); install.sh does nothing when it is already there.
heat:
	bash tests/heatserver/install.sh $(HEAT_VENV)

# python-tripleoclient 20 beside this plugin, in a venv of its own, for the
# coexistence tests (it cannot share ours: its dependencies pin ansible<2.10).
tripleoclient:
	bash tests/coexistence/install.sh $(TC_VENV)

# An OpenSSH server and sudo for the SSH fleet tests (tests/sshfleet):
# installed with apt-get, as root, only when missing.
sshfleet:
	bash tests/sshfleet/install.sh

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

# The same rehearsal with every host reached over real SSH (a test sshd on
# loopback addresses, started and stopped by the script; needs root).
demo-ssh: install sshfleet
	DEMO_TRANSPORT=ssh PATH="$(CURDIR)/$(BIN):$$PATH" bash tools/demo.sh

TEST_ENV = HEAT_VENV=$(CURDIR)/$(HEAT_VENV) TRIPLEOCLIENT_VENV=$(CURDIR)/$(TC_VENV)

test: install heat tripleoclient sshfleet demo
	$(TEST_ENV) $(BIN)/python -m pytest -q tests
	$(MAKE) docs

unit: install heat tripleoclient sshfleet
	$(TEST_ENV) $(BIN)/python -m pytest -q tests

docs: install
	$(BIN)/sphinx-build -q -W --keep-going -b html doc doc/_build/html

bench: install tripleoclient
	TRIPLEOCLIENT_VENV=$(CURDIR)/$(TC_VENV) $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(HEAT_VENV) $(TC_VENV) doc/_build .pytest_cache
