# The two commands of the README's quick start: `make demo` and `make test`.
# Both create the virtual environment on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
INTENTO = $(VENV)/bin/intento

.PHONY: demo test install clean fmt-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	@echo "== intento check: order fulfilment, with every shared policy"
	$(INTENTO) check examples/order_fulfilment policies
	@echo "== intento check: insurance quoting, with the common policies"
	$(INTENTO) check examples/insurance_quote policies/common
	@echo "== intento check: settlement, with the common policies"
	$(INTENTO) check examples/settlement policies/common
	@echo "== intento fmt --check: every example and policy is in canonical layout"
	$(INTENTO) fmt --check examples policies

test: $(VENV)/.installed
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build src/*.egg-info
