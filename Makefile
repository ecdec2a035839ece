# The README's two commands: `make demo` and `make test`. Each works on a fresh machine by itself.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed

.PHONY: demo test build bench-kernels vectors clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "setuptools>=77" wheel "Cython>=3.0"
	# torch is pinned (CPU build); --no-build-isolation reuses the Cython installed above.
	$(PIP) install --no-build-isolation -e ".[test,train]"
	touch $(STAMP)

# Rebuild the extension in place when a .pyx or C header changed (fast no-op otherwise).
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

test: build
	$(PY) -m pytest -q -p no:cacheprovider

demo: build
	$(VENV)/bin/hbnn demo

bench-kernels: build
	$(PY) -m edge.cli bench kernels

# Regenerate the golden vectors from the NumPy reference (commit the result).
vectors: build
	$(PY) scripts/make_vectors.py

clean:
	rm -rf build dist *.egg-info cy_kernels/_xhbnn.c cy_kernels/*.so

# The test suite on emulated ARM (QEMU user mode, no board needed; docs/DEPLOY.md). CI runs aarch64.
.PHONY: test-arm
test-arm: $(STAMP)
	HBNN_BUILD_PYTHON=$(PY) scripts/qemu-test aarch64
	HBNN_BUILD_PYTHON=$(PY) scripts/qemu-test armv7
