"""Bundle the validation-chosen model of an accuracy-table row as the demo model (issue 16).

    python benchmarks/bundle_model.py --row "HadaNet(16,2)"

Among the row's finished seeds (records in ``benchmarks/results/accuracy/``), the one with the best
validation top-1 is chosen (the test figures play no part; ties go to the lower seed). Its
best-validation checkpoint (``.cache/accuracy/<row>-s<seed>/best``) is converted to
``hbnn/models/lenet-fmnist-bw16-ba2.hbn`` with an ``evaluation`` entry in the file's metadata: the
record's test top-1 through the runtime, checked again here on the new file (it must equal the
record's), and how the model was chosen. Then PyTorch's top-1 on the 300 demo-clip images is saved
for tests/converters/test_bundled_model.py, and README's sentence is rewritten from the metadata.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy_store import RESULTS_DIR, ROW_BY_LABEL, load_records  # noqa: E402
from converters.data import DEFAULT_DATA_DIR, load_fashion_mnist  # noqa: E402

TORCH_TOP1 = os.path.join(ROOT, "tests", "converters", "data", "lenet-fmnist-bw16-ba2.torch-top1.npy")
CLIP_IMAGES = 300  # hbnn/models/fmnist-test-clip.npz: the first 300 test images


def choose(records: List[dict], row: str) -> dict:
    """The row's record with the best validation top-1 (ties: the lower seed)."""
    mine = [r for r in records if r["row"] == row]
    if not mine:
        raise SystemExit(f"bundle_model.py: error: Expected finished records of {row!r}, got none "
                         f"(python benchmarks/accuracy_table.py run --rows {row!r})")
    return max(mine, key=lambda r: (r["best_val_acc"], -r["seed"]))


def bundle(row: str, work: str, results: str, out: str, preds_out: str, readme: Optional[str], data: str) -> dict:
    from accuracy_table import (bundled_model_sentence, measure, record_path, sha256_file, work_dir,
                                write_readme)
    from converters.checkpoint import atomic_write
    from converters.export import convert
    from converters.train import BEST

    rec = choose(load_records(results), row)
    label = ROW_BY_LABEL[row]
    best = os.path.join(work_dir(argparse.Namespace(work=work), label, rec["seed"]), BEST)
    if not os.path.isdir(best) or sha256_file(os.path.join(best, "model.safetensors")) != rec["model_sha256"]:
        raise SystemExit(f"bundle_model.py: error: Expected the checkpoint of {row} seed {rec['seed']} in {best} "
                         f"(SHA-256 {rec['model_sha256'][:12]} as recorded), got none or another")
    evaluation = {"test_top1_runtime": rec["test_top1_runtime"], "test_top1_torch": rec["test_top1_torch"],
                  "agree": rec["agree"], "test_images": rec["test_images"],
                  "chosen_on": f"best validation top-1 ({rec['best_val_acc']}) of the row's seeds",
                  "row": row, "seed": rec["seed"],
                  "record": os.path.relpath(record_path(results, label, rec["seed"]), ROOT)}
    convert(best, out, extra_metadata={"evaluation": evaluation})
    images, labels = load_fashion_mnist(data, "test")
    m = measure(best, out, images, labels)
    if round(m["runtime_acc"], 5) != rec["test_top1_runtime"]:
        raise SystemExit(f"bundle_model.py: error: Expected the bundled file to score the record's "
                         f"{rec['test_top1_runtime']}, got {m['runtime_acc']}")
    preds = m["torch_preds"][:CLIP_IMAGES].astype(np.uint8)
    atomic_write(preds_out, lambda tmp: np.save(open(tmp, "wb"), preds))
    if readme:
        write_readme(readme, bundled_model_sentence(out))
    print(f"bundled {row} seed {rec['seed']} (val {rec['best_val_acc']}, test {100 * m['runtime_acc']:.2f} % through "
          f"the runtime, runtime == PyTorch on {100 * m['agree']:.2f} %) as {os.path.relpath(out, ROOT)}, "
          f"{m['bytes']} bytes")
    return rec


def main(argv: Optional[list] = None) -> int:
    from accuracy_table import BUNDLED, DEFAULT_WORK

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", default="HadaNet(16,2)", help="table row to bundle (default: %(default)s)")
    p.add_argument("--work", default=DEFAULT_WORK, help="the table's checkpoint directories")
    p.add_argument("--results", default=RESULTS_DIR)
    p.add_argument("--out", default=BUNDLED)
    p.add_argument("--preds-out", default=TORCH_TOP1, help="PyTorch's top-1 on the demo clip (.npy)")
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"), help="'' leaves README alone")
    p.add_argument("--data", default=DEFAULT_DATA_DIR)
    a = p.parse_args(argv)
    if a.row not in ROW_BY_LABEL:
        raise SystemExit(f"bundle_model.py: error: Expected a row from {sorted(ROW_BY_LABEL)}, got {a.row!r}")
    row = ROW_BY_LABEL[a.row]
    if a.out == BUNDLED and (row.beta_w, row.beta_a) != (16, 2):  # the file name says bw16-ba2
        raise SystemExit(f"bundle_model.py: error: Expected a (16, 2) row for {os.path.relpath(BUNDLED, ROOT)}, "
                         f"got {a.row} {row.betas} (give --out)")
    bundle(a.row, a.work, a.results, a.out, a.preds_out, a.readme or None, a.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
