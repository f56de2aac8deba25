# The two commands of the README's quick start: `make demo` and `make test`.
# Both create the virtual environment on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
INTENTO = $(VENV)/bin/intento

.PHONY: demo test install bytecode clean bench bench-quick

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed bytecode

# intento's own modules compiled to bytecode ahead of time, as pip does for an installed wheel
# but not for this editable install: where PYTHONDONTWRITEBYTECODE is set, Python never writes
# them itself, and every `intento` command compiled each of its modules again at start-up
# (`intento plan` took about 10% longer). Only files changed since the last run are compiled again.
bytecode: $(VENV)/.installed
	$(PY) -m compileall -q src/intento

demo: $(VENV)/.installed bytecode
	@echo "== intento check: order fulfilment, with every shared policy"
	$(INTENTO) check examples/order_fulfilment policies
	@echo "== intento check: insurance quoting, with the common policies"
	$(INTENTO) check examples/insurance_quote policies/common
	@echo "== intento check: settlement, with the common policies"
	$(INTENTO) check examples/settlement policies/common
	@echo "== intento fmt --check: every example and policy is in canonical layout"
	$(INTENTO) fmt --check examples policies
	@echo
	@echo "== intento test: the policy tests shipped with the order example"
	$(INTENTO) test examples/order_fulfilment policies
	@echo
	@echo "== plan: a normal EU order (EU providers only, cheapest first)"
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/eu_order.json
	@echo
	@echo "== plan: a large US order (a fraud check before payment, by another provider)"
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/large_us_order.json
	@echo
	@echo "== plan: a US order while stripe is down (payment rerouted), as a Gantt chart"
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/us_order.json --state examples/order_fulfilment/requests/stripe_down.json
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/us_order.json --state examples/order_fulfilment/requests/stripe_down.json --format mermaid
	@echo
	@echo "== explain: why an EU order has no plan while adyen is down (a reviewer's Markdown report; exit 3 = infeasible)"
	$(INTENTO) explain examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/eu_order.json --state '{"providers": {"adyen": {"status": "down", "since": "2026-11-24T10:32:00Z"}}}' --format markdown || [ $$? -eq 3 ]
	@echo
	@echo "== run: the order example end to end in simulation; stripe goes down mid-run and payment is re-routed"
	rm -f .demo-run.db .demo-run.db-wal .demo-run.db-shm .demo-run.db.journal.jsonl .demo-run.db.audit.jsonl .demo-run.db.audit.jsonl.key
	$(INTENTO) run examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/us_order.json --simulate examples/order_fulfilment/scenarios/stripe_outage.json --store .demo-run.db
	@echo
	@echo "== status: did the work finish, and if not, where did it stall?"
	$(INTENTO) status --store .demo-run.db --project examples/order_fulfilment --project policies
	@echo
	@echo "== audit: every plan and re-plan of that run, its verification, and its replay (each decision re-solved from its recorded inputs)"
	$(INTENTO) audit show .demo-run.db.audit.jsonl
	$(INTENTO) audit verify .demo-run.db.audit.jsonl
	$(INTENTO) audit replay .demo-run.db.audit.jsonl examples/order_fulfilment policies
	@echo
	@echo "== run: an insurance quote end to end in simulation (a number given decides the policies; the scoring model is out for 3 minutes)"
	rm -f .demo-quote.db .demo-quote.db-wal .demo-quote.db-shm .demo-quote.db.journal.jsonl .demo-quote.db.audit.jsonl .demo-quote.db.audit.jsonl.key
	$(INTENTO) run examples/insurance_quote policies/common --intent progress_quote --given examples/insurance_quote/requests/large_premium.json --simulate examples/insurance_quote/scenarios/model_down.json --store .demo-quote.db
	$(INTENTO) audit replay .demo-quote.db.audit.jsonl examples/insurance_quote policies/common
	@echo
	@echo "== audit: record two decisions in a hash-chained log and verify it"
	rm -f .demo-audit.jsonl
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/eu_order.json --audit .demo-audit.jsonl > /dev/null
	$(INTENTO) plan examples/order_fulfilment policies --intent fulfil_order --given examples/order_fulfilment/requests/large_us_order.json --audit .demo-audit.jsonl > /dev/null
	$(INTENTO) audit verify .demo-audit.jsonl
	$(INTENTO) audit show .demo-audit.jsonl

test: $(VENV)/.installed bytecode
	$(PY) -m pytest -q

# Benchmarks (not part of the quick start): tables on stdout, JSON and PNG in benchmarks/results/.
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m benchmarks

bench-quick: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build src/*.egg-info .demo-*
