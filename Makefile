# The front door; each target is a script any machine with Python 3.11+ can run directly.
.PHONY: demo test check bench clean

demo:
	./scripts/demo

test:
	./scripts/test

check:
	./scripts/bootstrap dev
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports

bench:
	./scripts/bootstrap dev
	.venv/bin/python bench/agent_tick.py

clean:
	rm -rf .venv .dcmon .pytest_cache .mypy_cache .ruff_cache
