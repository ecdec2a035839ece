"""Guest side of ``scripts/arm-bench``: runs inside the emulated ARM Python, under QEMU.

    arm_bench_guest.py ENGINE MODEL INPUT.npy FRAMES MAPS_OUT

ENGINE: hbnn (edge.Interpreter on a .hbn) | litert (ai_edge_litert) | tflite (tflite_runtime).
Loads the model, runs FRAMES frames (set_tensor + invoke + get_tensor, batch 1, one thread),
writes the guest's /proc/self/maps to MAPS_OUT (so the host can tell which library an address is
in) and prints one JSON line. The host counts instructions for two or three values of FRAMES and
differences them, so everything outside the loop cancels; keep it identical between runs.
"""
import json
import sys

import numpy as np


def make_runner(engine, model):
    if engine == "hbnn":
        from edge.interpreter import Interpreter
        interp = Interpreter(model, num_threads=1)
    elif engine == "litert":
        from ai_edge_litert.interpreter import Interpreter
        interp = Interpreter(model_path=model, num_threads=1)
    elif engine == "tflite":
        from tflite_runtime.interpreter import Interpreter
        interp = Interpreter(model_path=model, num_threads=1)
    else:
        raise ValueError(f"Expected engine hbnn, litert or tflite, got {engine!r}")
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]

    def run(x):
        interp.set_tensor(inp, x)
        interp.invoke()
        return interp.get_tensor(out)
    return run


def main(engine, model, input_path, frames, maps_out):
    x = np.load(input_path).astype(np.float32)
    run = make_runner(engine, model)
    y = None
    for _ in range(int(frames)):
        y = run(x)
    with open("/proc/self/maps") as src, open(maps_out, "w") as dst:
        dst.write(src.read())
    y = np.asarray(y, np.float64).reshape(-1)
    print(json.dumps({"engine": engine, "frames": int(frames), "argmax": int(y.argmax()), "sum": float(y.sum())}))


if __name__ == "__main__":
    main(*sys.argv[1:])
