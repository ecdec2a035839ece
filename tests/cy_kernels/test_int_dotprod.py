"""The SDOT (Armv8.2 dot product) int8 GEMM of the NEON backend: chosen at run time, reported as the
"neon-dotprod" kernel variant, bit-exact to cy_kernels.reference_int with SDOT on and off.

The bit-exact part needs an aarch64 CPU with the dot product: `HBNN_QEMU_CPU=cortex-a76
scripts/qemu-test aarch64 tests/cy_kernels/test_int_dotprod.py` (QEMU's cortex-a72 and cortex-a53
lack it: there the other kernel runs, which the plain qemu-test covers)."""
import numpy as np
import pytest

import cy_kernels as ck
from cy_kernels import _xhbnn
from cy_kernels import reference_int as ri

needs_dotprod = pytest.mark.skipif(not _xhbnn.dotprod_supported(),
                                   reason="needs an aarch64 CPU with the dot product (e.g. QEMU -cpu cortex-a76)")


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def neon():
    """The NEON backend for the test, and the SDOT state the import chose restored afterwards."""
    best = ck.backend_name()
    _xhbnn._use_backend("neon")
    state = _xhbnn.kernel_variant() == "neon-dotprod"
    yield
    _xhbnn._use_dotprod(state)
    _xhbnn._use_backend(best)


def test_bench_kernels_header_is_the_backend_without_a_variant():
    from cy_kernels.bench import backend_label

    if _xhbnn.kernel_variant() == ck.backend_name():
        assert backend_label() == ck.backend_name()
    else:
        assert backend_label() == f"{ck.backend_name()} ({_xhbnn.kernel_variant()})"


def test_variant_names_the_backend_unless_sdot_runs():
    variant = _xhbnn.kernel_variant()
    if _xhbnn.dotprod_supported() and ck.backend_name() == "neon":
        assert variant == "neon-dotprod"   # chosen at import, from HWCAP_ASIMDDP
    elif variant == "avx512-simde":
        assert ck.backend_name() == "avx512"   # the emulated test build (setup.py: HBNN_SIMDE_AVX512=1)
    else:
        assert variant == ck.backend_name()


def test_sdot_cannot_be_forced_without_the_extension():
    if _xhbnn.dotprod_supported():
        pytest.skip("this CPU has the dot product")
    with pytest.raises(ValueError, match="not available"):
        _xhbnn._use_dotprod(True)
    assert _xhbnn._use_dotprod(False) is False
    assert _xhbnn.kernel_variant() in (ck.backend_name(), "avx512-simde")  # unchanged (emulated build: -simde)


@needs_dotprod
def test_switching_sdot_changes_the_reported_variant(neon):
    assert _xhbnn._use_dotprod(False) is False and _xhbnn.kernel_variant() == "neon"
    assert _xhbnn._use_dotprod(True) is True and _xhbnn.kernel_variant() == "neon-dotprod"


# rows x filters around the 4 x 4 tile; K around the 16-byte step and the 32-byte row padding
SHAPES = [(m, n) for m in (1, 2, 3, 4, 5, 7, 9) for n in (1, 2, 3, 4, 5, 6, 9)]


@needs_dotprod
@pytest.mark.parametrize("sdot", [True, False])
@pytest.mark.parametrize("k", [1, 15, 16, 17, 31, 32, 33, 100, 1000])
def test_int8_linear_bit_exact_both_kernels(neon, sdot, k):
    _xhbnn._use_dotprod(sdot)
    for bw, ba in ((16, 2), (2, 2), (8, 2)):
        for m, n in SHAPES:
            x, w = rand((m, k), m * 131 + n), rand((n, k), k)
            pw = ck.pack_weights(w, bw, act_factor=ri.act_factor_for(x, ba) * np.float32(0.7))  # some saturate
            ints = ri.weight_ints(pw.bits, pw.levels, pw.row_length, bw).reshape(w.shape)
            np.testing.assert_array_equal(ck.hbnn_linear(x, pw, bw, ba),
                                          ri.int_linear(x, ints, pw.factors, ba, pw.act_factor))


@needs_dotprod
@pytest.mark.parametrize("sdot", [True, False])
@pytest.mark.parametrize("case", [(1, 12, 12, 20, 50, 5, 1, 0), (2, 9, 7, 3, 5, 3, 1, 1), (1, 7, 7, 48, 7, 3, 2, 2)])
def test_int8_conv_bit_exact_both_kernels(neon, sdot, case):
    _xhbnn._use_dotprod(sdot)
    b, h, w_, c, o, k, stride, pad = case
    x, w = rand((b, h, w_, c), 7), rand((o, k, k, c), 8)
    pw = ck.pack_weights(w, 16, act_factor=ri.act_factor_for(x, 2))
    ints = ri.weight_ints(pw.bits, pw.levels, pw.row_length, 16).reshape(w.shape)
    op = ck.prepare_conv2d(pw, 16, 2, x.shape, stride, pad)
    assert op.path == "int8"
    out = np.empty(op.output_shape, np.float32)
    op(x, out)
    np.testing.assert_array_equal(out, ri.int_conv2d(x, ints, pw.factors, 2, pw.act_factor, stride, pad))


@pytest.mark.skipif("neon" not in _xhbnn.available_backends(), reason="needs the NEON backend (ARM)")
def test_bench_kernels_header_names_the_variant(neon):
    from cy_kernels.bench import backend_label

    assert backend_label() == "neon" + (" (neon-dotprod)" if _xhbnn.dotprod_supported() else "")
    if _xhbnn.dotprod_supported():
        _xhbnn._use_dotprod(False)
        assert backend_label() == "neon"
