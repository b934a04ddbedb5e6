# The front door; each target is a script any machine with Python 3.11+ can run directly.
.PHONY: demo test check bench bench-smoke clean

demo:
	./scripts/demo

test:
	./scripts/test

check:
	./scripts/bootstrap dev
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports

# Every benchmark at full size, one after another (hours: see bench/README.md).
bench:
	./scripts/bootstrap dev
	.venv/bin/python bench/agent_tick.py
	.venv/bin/python bench/agent_overhead.py
	.venv/bin/python bench/ingest.py
	.venv/bin/python bench/query.py
	.venv/bin/python bench/outage.py --runs 3
	.venv/bin/python bench/promql.py
	.venv/bin/python bench/alerting.py

# Every benchmark's smoke mode, as CI runs it (about 2 minutes).
bench-smoke:
	./scripts/bootstrap dev
	./bench/smoke

clean:
	rm -rf .venv .dcmon .pytest_cache .mypy_cache .ruff_cache
