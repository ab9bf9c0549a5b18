# Two commands do all set-up on a fresh machine (each creates .venv when missing):
#   make demo   render the full report on the embedded demo -> reports/demo-*/report.html
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zoorepro-installed

.PHONY: demo test lab browser clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lab]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoorepro run params/demo.yaml

test: $(STAMP) browser
	$(PY) -m pytest

# Headless Chromium for the report's browser test (Debian packages); skipped where apt is absent.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver shellcheck >/dev/null) || \
	  echo "note: chromium not installed; the browser test will be skipped"; }

lab: $(STAMP)
	$(VENV)/bin/zoorepro lab

clean-venv:
	rm -rf $(VENV)
