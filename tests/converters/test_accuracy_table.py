"""benchmarks/accuracy_table.py + accuracy_store.py: records skip and resume runs; the table renders from them."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy_store as store  # noqa: E402


def fake_record(row: str, seed: int, test: float, **kw) -> dict:
    r = store.ROW_BY_LABEL[row]
    rec = {"row": row, "beta_w": r.beta_w, "beta_a": r.beta_a, "seed": seed, "arch": "lenet",
           "recipe": {"epochs": 30, "lr": 1e-3, "batch_size": 128, "augment": "flip-shift", "warmup_epochs": 0.0,
                      "kd": None if r.is_float else {"alpha": 0.9, "temperature": 4.0}, "val_size": 5000},
           "best_epoch": 27, "best_val_acc": test + 0.01, "test_images": 10000, "test_top1_runtime": test,
           "test_top1_torch": test, "agree": 1.0, "bytes": 195528 if not r.is_float else 1727096,
           "ratio": 8.82 if not r.is_float else 1.0, "train_seconds": 900.0}
    rec.update(kw)
    return rec


def test_records_round_trip_and_render_mean_spread_and_missing_rows(tmp_path):
    for seed, acc in ((0, 0.91), (1, 0.92)):
        store.write_record(store.record_path(str(tmp_path), store.ROW_BY_LABEL["FP"], seed),
                           fake_record("FP", seed, acc))
    store.write_record(str(tmp_path / "xnor-net-s0.json"), fake_record("XNOR-Net", 0, 0.89, best_epoch=12))
    recs = store.load_records(str(tmp_path))
    assert [(r["row"], r["seed"]) for r in recs] == [("FP", 0), ("FP", 1), ("XNOR-Net", 0)]
    table = store.render_table(recs, "python benchmarks/accuracy_table.py run")
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| 2 | 92.50 +- 0.71 % | **91.50 +- 0.71 %**" in lines["| FP"]   # mean +- sample std of 2 seeds
    assert "| 1 | 90.00 % | **89.00 %**" in lines["| XNOR-Net"]          # one seed: no spread
    assert "KD a=0.9 T=4" in lines["| XNOR-Net"] and "| 12 |" in lines["| XNOR-Net"]
    assert "no finished run yet" in lines["| HadaNet(16,2)"]
    assert "--epochs" not in table  # every row states its own recipe
    assert table.startswith(store.START) and table.endswith(store.END)


def test_write_doc_replaces_only_between_markers(tmp_path):
    doc = tmp_path / "ACC.md"
    doc.write_text(f"intro\n{store.START}\nold\n{store.END}\noutro\n")
    store.write_doc(str(doc), f"{store.START}\nnew\n{store.END}")
    assert doc.read_text() == f"intro\n{store.START}\nnew\n{store.END}\noutro\n"


def test_a_bad_record_is_an_error_not_skipped(tmp_path):
    (tmp_path / "fp-s0.json").write_text(json.dumps({"row": "FP"}))
    with pytest.raises(ValueError, match="Expected a record"):
        store.load_records(str(tmp_path))


def _table_module():
    spec = importlib.util.spec_from_file_location("accuracy_table", ROOT / "benchmarks" / "accuracy_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _small_table(monkeypatch, epochs: int):
    """The table runner with recipes small enough for the fake dataset (a few seconds a run)."""
    t = _table_module()
    small = {"epochs": epochs, "lr": 3e-3, "batch_size": 64, "val_size": 64}
    monkeypatch.setattr(t, "FLOAT_RECIPE", dict(t.FLOAT_RECIPE, **small))
    monkeypatch.setattr(t, "BINARY_RECIPE", dict(t.BINARY_RECIPE, **small))
    return t


def test_plan_runs_fp_and_hadanet_16_2_first_seed_major():
    t = _table_module()
    order = [(r.label, s) for r, s in t.plan(t.parse_rows("XNOR-Net,HadaNet(16,2),FP"), [0, 1])]
    assert order == [("FP", 0), ("HadaNet(16,2)", 0), ("FP", 1), ("HadaNet(16,2)", 1),
                     ("XNOR-Net", 0), ("XNOR-Net", 1)]
    with pytest.raises(SystemExit, match="Expected rows"):
        t.parse_rows("HadaNet(3,3)")


def test_runner_distils_resumes_and_skips_finished_records(fake_fmnist, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from converters import checkpoint as ckpt

    t = _small_table(monkeypatch, 2)
    d, _ = fake_fmnist
    results, doc = tmp_path / "results", tmp_path / "ACC.md"
    argv = ["run", "--rows", "HadaNet(16,2)", "--seeds", "0", "--data", str(d), "--work", str(tmp_path / "work"),
            "--results", str(results), "--doc", str(doc), "--no-progress"]

    real_save = ckpt.save_checkpoint

    def interrupt_second_epoch(directory, model, config, *a, **kw):  # killed during the student's epoch 2
        if config.get("kd") and config["epoch"] == 2:
            raise KeyboardInterrupt
        real_save(directory, model, config, *a, **kw)

    monkeypatch.setattr(ckpt, "save_checkpoint", interrupt_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        t.main(argv)
    assert not (results / "hadanet-16-2-s0.json").exists()
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert t.main(argv) == 0  # resumes the student at epoch 2; the teacher is finished and not re-trained
    rec = json.loads((results / "hadanet-16-2-s0.json").read_text())
    assert rec["epochs_run"] == 2 and [h[0] for h in rec["history"]] == [1, 2]
    assert rec["teacher"]["row"] == "FP" and len(rec["teacher"]["sha256"]) == 64
    assert rec["recipe"]["kd"] == {"alpha": 0.9, "temperature": 4.0} and rec["test_images"] == 128
    assert rec["agree"] >= 0.99 and rec["bytes"] > 0 and rec["best_epoch"] in (1, 2)
    assert not (results / "fp-s0.json").exists()  # the teacher was trained, but its row was not asked for
    assert "| HadaNet(16,2) | (16, 2) | 1 |" in doc.read_text()

    def no_training(*a, **kw):
        raise AssertionError("a finished record must be skipped")
    monkeypatch.setattr(t, "train_row", no_training)
    assert t.main(argv) == 0


def test_integer_scale_row_trains_with_integer_scales_and_says_so(fake_fmnist, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    t = _small_table(monkeypatch, 1)
    d, _ = fake_fmnist
    results, doc, work = tmp_path / "results", tmp_path / "ACC.md", tmp_path / "work"
    row = store.ROW_BY_LABEL["HadaNet(16,2) int"]
    assert row.slug == "hadanet-16-2-int" and row.betas == "(16, 2) int"
    assert t.main(["run", "--rows", "HadaNet(16,2) int", "--seeds", "0", "--data", str(d), "--work", str(work),
                   "--results", str(results), "--doc", str(doc), "--no-progress"]) == 0
    rec = json.loads((results / "hadanet-16-2-int-s0.json").read_text())
    assert rec["int_scales"] is True and rec["teacher"]["row"] == "FP"
    assert json.loads((work / "hadanet-16-2-int-s0" / "config.json").read_text())["int_scales"] is True
    from edge.format import read_hbn
    from edge.format_graph import is_int_scales
    model = read_hbn(str(work / "hadanet-16-2-int-s0" / "model.hbn"))
    assert [ly["name"] for ly in model.graph["layers"] if is_int_scales(ly)] == ["conv2", "fc1"]
    assert rec["agree"] >= 0.99
    assert "| HadaNet(16,2) int | (16, 2) int | 1 |" in doc.read_text()


def test_bundle_takes_the_best_validation_seed_and_records_its_test_figure(fake_fmnist, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    t = _small_table(monkeypatch, 1)
    spec = importlib.util.spec_from_file_location("bundle_model", ROOT / "benchmarks" / "bundle_model.py")
    bm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bm)
    d, _ = fake_fmnist
    results, work = tmp_path / "results", tmp_path / "work"
    assert t.main(["run", "--rows", "HadaNet(16,2)", "--seeds", "0,1", "--data", str(d), "--work", str(work),
                   "--results", str(results), "--doc", str(tmp_path / "ACC.md"), "--no-progress"]) == 0
    recs = [json.loads((results / f"hadanet-16-2-s{s}.json").read_text()) for s in (0, 1)]
    want = max(recs, key=lambda r: (r["best_val_acc"], -r["seed"]))
    assert bm.choose(recs, "HadaNet(16,2)") is not None and bm.choose(recs, "HadaNet(16,2)")["seed"] == want["seed"]
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{t.README_START}\nold\n{t.README_END}\n")
    out, preds = tmp_path / "bundled.hbn", tmp_path / "preds.npy"
    bm.bundle("HadaNet(16,2)", str(work), str(results), str(out), str(preds), str(readme), str(d))
    from edge.format import read_hbn
    ev = read_hbn(str(out)).metadata["evaluation"]
    assert ev["seed"] == want["seed"] and ev["test_top1_runtime"] == want["test_top1_runtime"]
    assert ev["chosen_on"].startswith("best validation top-1")
    assert f"{100 * want['test_top1_runtime']:.2f} % top-1" in readme.read_text()
    import numpy as np
    assert np.load(preds).shape == (128,)  # the fake test set's 128 images (the clip's first 300 on the real one)
    with pytest.raises(SystemExit, match="Expected finished records of 'XNOR-Net'"):
        bm.choose(recs, "XNOR-Net")


def test_readme_quotes_the_bundled_model_from_its_own_metadata():
    t = _table_module()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = readme[readme.index(t.README_START) + len(t.README_START):readme.index(t.README_END)].strip()
    # Stale after a model change: `python benchmarks/accuracy_table.py readme` rewrites it.
    assert quoted == t.bundled_model_sentence()
    assert "90.58 %" in quoted and "8.8x" in quoted  # HadaNet(16,2) seed 2, the best validation of 3 seeds


def test_recipe_compare_shows_paired_validation_epochs(fake_fmnist, tmp_path):
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("recipe_compare", ROOT / "benchmarks" / "recipe_compare.py")
    rc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rc)
    d, _ = fake_fmnist
    with pytest.raises(SystemExit, match="Expected --teacher"):
        rc.main(["run", "--only", "xnor-kd", "--epochs", "1", "--data", str(d), "--work", str(tmp_path)])
    (tmp_path / "h16-2-base-s0").mkdir()
    (tmp_path / "h16-2-base-s0" / "config.json").write_text(json.dumps(
        {"epochs": 10, "history": [{"val_acc": 0.85, "seconds": 20.0}, {"val_acc": 0.8612, "seconds": 22.0}]}))
    table = rc.show(type("A", (), {"work": str(tmp_path), "seed": 0})())
    assert "| h16-2-base | 10 | 85.00 | 86.12 | 21 |" in table
