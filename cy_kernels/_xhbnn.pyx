# Temporary: the real kernels replace these NumPy-backed bodies (same signatures).
import numpy as np
from . import reference as ref

def backend_name():
    return "portable"

def pack_rows(rows, beta):
    b = None if beta < 0 else beta
    return ref.pack_bits(rows), ref.segment_scales(rows, b)

def _weights(pw):
    if pw.bits is None:
        return pw.dense.reshape(pw.shape[0], -1), 1
    k = pw.row_length
    neg = ref.unpack_bits(pw.bits, k)
    seg = ref.segment_length(pw.beta_w, k)
    sc = np.repeat(pw.scales, seg, axis=1)[:, :k]
    return np.where(neg, -sc, sc).astype(np.float32), 1

def _finish(y, outs, outb, relu, result):
    result[...] = ref.epilogue(y, outs, outb, relu)

def _prescale(x, ins, inb):
    if ins is not None:
        x = x * ins
    if inb is not None:
        x = x + inb
    return np.ascontiguousarray(x, dtype=np.float32)

def linear(x, pw, beta_a, threads, ins, inb, outs, outb, relu, result):
    wf, _ = _weights(pw)
    y = ref.hbnn_linear(_prescale(x, ins, inb), wf, 1, None if beta_a < 0 else beta_a)
    _finish(y, outs, outb, relu, result)

def conv2d(x, pw, beta_a, stride, padding, threads, ins, inb, outs, outb, relu, result):
    wf, _ = _weights(pw)
    y = ref.hbnn_conv2d(_prescale(x, ins, inb), wf.reshape(pw.shape), 1, None if beta_a < 0 else beta_a, stride, padding)
    _finish(y, outs, outb, relu, result)
