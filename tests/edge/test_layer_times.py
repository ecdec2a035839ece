"""benchmarks/layer_times.py: one timed row per interpreter step, labelled with its kernel path."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("layer_times", ROOT / "benchmarks" / "layer_times.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_step_times_on_the_bundled_model(capsys):
    mod = _load()
    rows, total = mod.step_times(str(ROOT / "hbnn" / "models" / "lenet-fmnist-bw16-ba2.hbn"), runs=3)
    assert [name for name, _, _ in rows] == ["conv1", "maxpool1", "conv2", "maxpool4", "fc1", "fc2", "softmax9"]
    assert [path for _, path, _ in rows] == ["float", "", "sign", "", "sign", "float", ""]
    assert all(us > 0 for _, _, us in rows) and total > 0
    mod.main([str(ROOT / "hbnn" / "models" / "lenet-fmnist-bw16-ba2.hbn"), "--runs", "2"])
    assert "invoke()" in capsys.readouterr().out
