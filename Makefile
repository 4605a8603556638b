# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_QUIET := --quiet --disable-pip-version-check
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install browser clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_QUIET) -e ".[test,export,explain,lora,timm,app,plot,tensorboard]" > $(VENV)/pip.log 2>&1 || { tail -40 $(VENV)/pip.log; exit 1; }
	$(PY) -c "import hfcls, torch, transformers, datasets, accelerate"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m hfcls.cli.quickstart

# tests/app drive the demo app in Debian's headless Chromium (chromedriver through selenium).
browser:
	command -v chromium > /dev/null && command -v chromedriver > /dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver > /dev/null; }

test: install browser
	$(VENV)/bin/ruff check hfcls tests benchmarks
	$(VENV)/bin/ruff format --check hfcls tests benchmarks
	$(PY) -m pytest -q -n 2 --dist loadgroup -p no:cacheprovider tests

clean:
	rm -rf $(VENV) work_dirs
