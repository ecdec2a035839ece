"""`hbnn infer` through the real CLI dispatcher: per-frame results, summary, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hbnn.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from edge.format import write_hbn
    from model_fakes import random_lenet
    graph, tensors = random_lenet()
    path = tmp_path_factory.mktemp("m") / "lenet.hbn"
    write_hbn(str(path), graph, tensors)
    return str(path)


def test_infer_json_results_and_summary(model, capsys):
    rc = main(["infer", "--model", model, "--source", "npz:hbnn/models/fmnist-test-clip.npz", "--json",
               "--max-frames", "12", "--topk", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 13
    rows = [json.loads(line) for line in out]
    assert [r["sequence"] for r in rows[:12]] == list(range(12))
    assert all(len(r["topk"]) == 2 and 0 <= r["confidence"] <= 1 for r in rows[:12])
    labels = np.load("hbnn/models/fmnist-test-clip.npz")["labels"][:12]
    assert [r["truth"] for r in rows[:12]] == labels.tolist()
    summary = rows[12]["summary"]
    assert summary["frames"] == 12 and summary["labelled"] == 12 and summary["bad_frames"] == 0
    assert summary["latency_ms"]["p50"] > 0


def test_infer_text_output_and_status(model, capsys):
    rc = main(["infer", "--model", model, "--source", "synthetic:240x320x3", "--max-frames", "5",
               "--status-interval", "0"])
    cap = capsys.readouterr()
    assert rc == 0
    assert len([l for l in cap.out.splitlines() if l.startswith("#")]) == 5
    assert cap.out.splitlines()[-1].startswith("summary: frames 5 |")
    assert "fps | latency p50" in cap.err  # the live status line


def test_infer_images_dir(model, tmp_path, capsys):
    for i in range(3):
        np.save(tmp_path / f"{i}.npy", np.full((28, 28), 40 * i, np.uint8))
    assert main(["infer", "--model", model, "--source", f"images:{tmp_path}", "--quiet"]) == 0
    assert "frames 3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--source", "webcam"], "Expected a source spec"),
    (["--source", "v4l2:/dev/video99"], "/dev/video99"),
    (["--source", "npz:/nonexistent.npz"], "missing path"),
])
def test_infer_bad_sources_exit_2(model, argv, message, capsys):
    assert main(["infer", "--model", model] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hbnn: error: ") and message in err and "Traceback" not in err


def test_infer_bad_models_exit_2(tmp_path, capsys):
    assert main(["infer", "--model", str(tmp_path / "none.hbn"), "--source", "synthetic"]) == 2
    assert "missing path" in capsys.readouterr().err
    bad = tmp_path / "bad.hbn"
    bad.write_bytes(b"\x10\0\0\0\0\0\0\0{not json}     ")
    assert main(["infer", "--model", str(bad), "--source", "synthetic"]) == 2
    assert "Expected a model the runtime can run" in capsys.readouterr().err


def test_infer_sends_results_over_the_bridge(model, capsys):
    rc = main(["infer", "--model", model, "--source", "npz:hbnn/models/fmnist-test-clip.npz", "--json", "--quiet",
               "--max-frames", "20", "--link", "loop://", "--protocol", "frames"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    link = summary["link"]
    assert link["results_in"] == 20 and link["results_sent"] + link["drops"] == 20


def test_infer_bad_link_exit_2(model, capsys):
    assert main(["infer", "--model", model, "--source", "synthetic", "--link", "/dev/ttyNOPE0"]) == 2
    assert "Expected to open link" in capsys.readouterr().err


@pytest.mark.no_emulation
def test_infer_sigint_prints_the_summary_and_exits_0(model, tmp_path):
    import signal
    import subprocess
    import sys
    code = f"import sys; from hbnn.cli import main; sys.exit(main(['infer', '--model', {model!r}, " \
           "'--source', 'synthetic:64x64x3', '--quiet', '--status-interval', '0.1']))"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stderr.readline()  # the first status line: the loop is running
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip().startswith("summary: frames ")


def test_infer_names_bad_frames_and_keeps_going(model, tmp_path, capsys):
    np.save(tmp_path / "0.npy", np.zeros((28, 28), np.uint8))
    np.save(tmp_path / "1.npy", np.full((28, 28), np.nan, np.float32))
    np.save(tmp_path / "2.npy", np.zeros((28, 28, 2), np.uint8))
    np.save(tmp_path / "3.npy", np.zeros((28, 28), np.uint8))
    assert main(["infer", "--model", model, "--source", f"images:{tmp_path}", "--quiet"]) == 0
    cap = capsys.readouterr()
    assert "frame 1 skipped (1 so far): Expected finite pixel values" in cap.err
    assert "frame 2 skipped (2 so far): Expected a frame of shape" in cap.err
    assert "frames 2 |" in cap.out and "bad 2" in cap.out


@pytest.mark.no_emulation
def test_a_closed_pipe_ends_quietly():
    """`hbnn infer ... | head -1`: no BrokenPipeError traceback, exit status 141 as for a C tool."""
    import subprocess
    import sys

    from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL

    proc = subprocess.Popen([sys.executable, "-m", "hbnn", "infer", "--model", str(BUNDLED_MODEL), "--source",
                             f"npz:{BUNDLED_CLIP}", "--loop", "--status-interval", "1e9"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # what head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert first.startswith("#0 ") and "Traceback" not in err and "BrokenPipe" not in err, err
