"""Peer-runtime side of ``bench_models.py``; runs in the separate bench venv (numpy<2).

    peer_worker.py tflite GRAPH.json TENSORS.npz OUT_DIR [CALIB.npy]
        Rebuild the exported graph (the same float weights the PyTorch model holds, BN
        folded by converters.export) as a Keras-free TensorFlow function of tf.nn ops, and
        convert it to OUT_DIR/fp32.tflite, OUT_DIR/int8.tflite (full-integer kernels, float
        input/output, calibrated on CALIB.npy) and OUT_DIR/dynamic.tflite (int8 weights only).
    peer_worker.py run RUNTIME MODEL INPUT.npy THREADS RUNS MAX_SECONDS
        RUNTIME: litert | tflite | onnxruntime. Prints one JSON line: latency stats and output.
    peer_worker.py serve RUNTIME
        For interleaved rounds: reads JSON commands on stdin, one per line, answers one JSON line each:
        {"load": [MODEL, INPUT.npy, THREADS]} -> {"id": N, "runtime": ..., "output": [...]};
        {"run": N, "calls": C, "seconds": S, "warmup": W} -> {"times": [ms, ...]} (W untimed calls
        first, then C timed calls or fewer after S seconds, at least 3). EOF ends it.

One runtime per process: LiteRT and tflite-runtime ship overlapping native libraries.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def build_tf_function(graph, tensors):
    import tensorflow as tf

    h, w, c = graph["input"]["shape"]
    consts = {}

    def const(name, transform=None):
        if name not in consts:
            value = tensors[name]
            consts[name] = tf.constant(transform(value) if transform else value)
        return consts[name]

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, c], tf.float32)])
    def model(x):
        for layer in graph["layers"]:
            kind = layer["type"]
            if kind == "conv2d":
                k = tensors[layer["weight"]]
                kw = const(layer["weight"], lambda a: np.ascontiguousarray(a.transpose(1, 2, 3, 0)))  # HWIO
                pad, stride = layer["padding"], layer["stride"]
                if pad and stride == 1 and k.shape[1] == k.shape[2] == 2 * pad + 1:
                    x = tf.nn.conv2d(x, kw, 1, "SAME")  # same as explicit zero padding, one op
                else:
                    if pad:
                        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                    x = tf.nn.conv2d(x, kw, stride, "VALID")
                if layer.get("bias"):
                    x = tf.nn.bias_add(x, const(layer["bias"]))
                if layer.get("relu"):
                    x = tf.nn.relu(x)
            elif kind == "dense":
                x = tf.matmul(x, const(layer["weight"], lambda a: np.ascontiguousarray(a.T)))
                if layer.get("bias"):
                    x = tf.nn.bias_add(x, const(layer["bias"]))
                if layer.get("relu"):
                    x = tf.nn.relu(x)
            elif kind == "affine":
                x = x * const(layer["scale"]) + const(layer["bias"])
            elif kind in ("maxpool", "avgpool"):
                pool = tf.nn.max_pool2d if kind == "maxpool" else tf.nn.avg_pool2d
                x = pool(x, layer["kernel"], layer["stride"], "VALID")
            elif kind == "relu":
                x = tf.nn.relu(x)
            elif kind == "flatten":
                x = tf.reshape(x, [1, -1])  # NHWC order, as the runtime flattens
            elif kind == "softmax":
                x = tf.nn.softmax(x)
            else:
                raise ValueError(f"Expected a known layer type, got {kind!r}")
        return x

    return model


def cmd_tflite(graph_path, tensors_path, out_dir, calib_path=None):
    import tensorflow as tf

    with open(graph_path) as fh:
        graph = json.load(fh)
    with np.load(tensors_path) as data:
        tensors = {k: data[k].astype(np.float32) for k in data.files}
    model = build_tf_function(graph, tensors)
    concrete = model.get_concrete_function()
    os.makedirs(out_dir, exist_ok=True)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    with open(os.path.join(out_dir, "fp32.tflite"), "wb") as fh:
        fh.write(conv.convert())
    h, w, c = graph["input"]["shape"]
    calib = np.load(calib_path) if calib_path else np.random.default_rng(0).normal(size=(64, h, w, c))
    calib = calib.astype(np.float32)

    def representative():
        for i in range(len(calib)):
            yield [calib[i:i + 1]]
    # Dynamic-range quantization: int8 weights, float activations (what Optimize.DEFAULT gives
    # without calibration data; reported separately from full-integer int8).
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    with open(os.path.join(out_dir, "dynamic.tflite"), "wb") as fh:
        fh.write(conv.convert())
    conv = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with open(os.path.join(out_dir, "int8.tflite"), "wb") as fh:
        fh.write(conv.convert())
    print(json.dumps({"ok": True, "tensorflow": tf.__version__}))


def _tflite_runner(module_interpreter, model, threads):
    interp = module_interpreter(model_path=model, num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def run(x):
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)
    return run


def make_runner(runtime, model, threads):
    if runtime == "litert":
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter
        # XNNPACK is LiteRT's default CPU delegate for float and int8 models.
        return _tflite_runner(Interpreter, model, threads), "ai-edge-litert " + getattr(
            ai_edge_litert, "__version__", "?")
    if runtime == "tflite":
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter
        return _tflite_runner(Interpreter, model, threads), "tflite-runtime " + tflite_runtime.__version__
    if runtime == "onnxruntime":
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return (lambda x: sess.run(None, {name: x})[0]), "onnxruntime " + ort.__version__
    raise ValueError(f"Expected runtime litert, tflite or onnxruntime, got {runtime!r}")


def timed(run, x, runs, max_seconds, warmup=20):
    for _ in range(warmup):
        run(x)
    times = []
    end = time.perf_counter() + max_seconds
    while len(times) < runs and (len(times) < 20 or time.perf_counter() < end):
        t0 = time.perf_counter_ns()
        run(x)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def cmd_run(runtime, model, input_path, threads, runs, max_seconds):
    x = np.load(input_path).astype(np.float32)
    run, version = make_runner(runtime, model, int(threads))
    y = np.asarray(run(x), np.float32).reshape(-1)
    times = timed(run, x, int(runs), float(max_seconds))
    print(json.dumps({"runtime": version, "median_ms": float(np.median(times)),
                      "p90_ms": float(np.percentile(times, 90)), "runs": len(times), "output": y.tolist()}))


def timed_slice(run, x, calls, seconds, warmup):
    for _ in range(warmup):
        run(x)
    times = []
    end = time.perf_counter() + seconds
    while len(times) < calls and (len(times) < 3 or time.perf_counter() < end):
        t0 = time.perf_counter_ns()
        run(x)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def cmd_serve(runtime):
    runners = []
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if "load" in cmd:
                model, input_path, threads = cmd["load"]
                x = np.load(input_path).astype(np.float32)
                run, version = make_runner(runtime, model, int(threads))
                y = np.asarray(run(x), np.float32).reshape(-1)
                runners.append((run, x))
                reply = {"id": len(runners) - 1, "runtime": version, "output": y.tolist()}
            else:
                run, x = runners[cmd["run"]]
                reply = {"times": timed_slice(run, x, int(cmd["calls"]), float(cmd["seconds"]),
                                              int(cmd.get("warmup", 0)))}
        except Exception as exc:  # reported to the driver, which carries on without this row
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    {"tflite": cmd_tflite, "run": cmd_run, "serve": cmd_serve}[cmd](*rest)
