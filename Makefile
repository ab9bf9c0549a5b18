# Two commands do all set-up on a fresh machine (each creates .venv when missing):
#   make demo   render the full report on the embedded demo -> reports/demo-*/report.html
#   make test   run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.zoorepro-installed

.PHONY: demo test quick quick-other-cpu lab browser lock clean-venv

$(STAMP): pyproject.toml requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements-lock.txt -e ".[test,lab,scale]"
	$(PY) -m ipykernel install --sys-prefix --name zoorepro --display-name "Python (zoorepro)" >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoorepro run params/demo.yaml

# everything, hypothesis's 'ci' profile: 100 examples per property (tests/conftest.py)
test: $(STAMP) browser
	$(PY) -m pytest --hypothesis-profile=ci

# the quick subset (about a minute on 2 cores: 58-64 s measured): no notebooks end to end, no
# browser; hypothesis's 'dev' profile, 10 examples per property (tests/conftest.py)
quick: $(STAMP)
	$(PY) -m pytest -m "not e2e and not browser" --hypothesis-profile=dev

# the quick subset as if on another machine (a made-up CPU with 64 cores: tests/fakehost/):
# proves that no expected string holds a fact of the machine the suite runs on
quick-other-cpu: $(STAMP)
	ZOOREPRO_TEST_FAKE_CPU="Zoorepro Fake CPU (no such chip)|64" PYTHONPATH=tests/fakehost \
	  $(PY) -m pytest -m "not e2e and not browser" --hypothesis-profile=dev

# rewrite the pip route's lock from the current venv
lock: $(STAMP)
	{ echo "# The pip route's lock: every package of a working 'make' venv (Python 3.11, x86_64),"; \
	  echo "# written by 'make lock' (pip freeze). 'make' installs with these as constraints."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^zoorepro'; } > requirements-lock.txt

# Headless Chromium for the report's browser test (Debian packages); skipped where apt is absent.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver shellcheck >/dev/null) || \
	  echo "note: chromium not installed; the browser test will be skipped"; }

lab: $(STAMP)
	$(VENV)/bin/zoorepro lab

clean-venv:
	rm -rf $(VENV)
