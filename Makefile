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

# -rs: every skipped test with its reason.
test: build
	$(PY) -m pytest -q -p no:cacheprovider -rs

demo: build
	$(VENV)/bin/hbnn demo

bench-kernels: build
	$(PY) -m hbnn.cli bench kernels

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

# The kernel and runtime tests against the C kernels built with AddressSanitizer + UndefinedBehavior-
# Sanitizer. Builds a copy of the tracked files in .cache/asan so the normal build stays untouched.
ASAN_LIBS = $(shell gcc -print-file-name=libasan.so):$(shell gcc -print-file-name=libubsan.so)
.PHONY: test-asan
test-asan: $(STAMP)
	rm -rf .cache/asan && mkdir -p .cache/asan
	git ls-files -z | xargs -0 cp --parents -t .cache/asan
	cd .cache/asan && HBNN_SANITIZE=1 $(abspath $(PY)) setup.py -q build_ext --inplace
	cd .cache/asan && LD_PRELOAD=$(ASAN_LIBS) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(abspath $(PY)) -m pytest -q -p no:cacheprovider -rs -m "not no_emulation" \
		tests/cy_kernels tests/edge/test_interpreter.py tests/edge/test_format.py tests/edge/test_format_corruption.py

# The kernel tests on the AVX-512 backend without an AVX-512 CPU: kernels_avx512.h compiled against
# SIMDe's portable intrinsics (Debian's libsimde-dev; setup.py HBNN_SIMDE_AVX512=1, -O1) and offered
# whatever the CPU, in a copy of the tracked files in .cache/avx512-simde. Checks that the library holds
# no AVX-512 instruction (none would run here) and that the emulated backend is the one selected, then
# runs tests/cy_kernels: every backend, avx512 first (float and integer-scale kernels), against the
# NumPy reference (no_emulation: the CPU-dispatch and compiler-warning tests, not about this build).
# 1 min 40 s on the 2-core VM (build 65 s, tests 35 s). Correctness only: emulated timings mean nothing.
.PHONY: test-avx512-emulated
test-avx512-emulated: $(STAMP)
	rm -rf .cache/avx512-simde && mkdir -p .cache/avx512-simde
	git ls-files -z | xargs -0 cp --parents -t .cache/avx512-simde
	cd .cache/avx512-simde && HBNN_SIMDE_AVX512=1 $(abspath $(PY)) setup.py -q build_ext --inplace
	cd .cache/avx512-simde && ! objdump -d cy_kernels/_xhbnn*.so | grep -q zmm
	cd .cache/avx512-simde && $(abspath $(PY)) -c 'import cy_kernels as ck; from cy_kernels import _xhbnn; \
		v = (ck.backend_name(), _xhbnn.kernel_variant()); assert v == ("avx512", "avx512-simde"), v; \
		print("backend:", *v)'
	cd .cache/avx512-simde && $(abspath $(PY)) -m pytest -q -p no:cacheprovider -rs -m "not no_emulation" \
		tests/cy_kernels

# The long fuzz run (tests/fuzz/, docs in scripts/fuzz-long): 100,000 seeded cases each for the model
# loader, the framed decoder (+ the C decoder differential) and the MAVLink parser; ~20 min, one core.
FUZZ_CASES ?= 100000
FUZZ_SEED ?= 1
.PHONY: fuzz-long
fuzz-long: build
	mkdir -p .cache
	nice -n 19 $(PY) scripts/fuzz-long --cases $(FUZZ_CASES) --seed $(FUZZ_SEED) --json .cache/fuzz-long.json
