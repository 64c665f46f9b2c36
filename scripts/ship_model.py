"""Make a trained generator the bundled default, with its model card.

    python scripts/ship_model.py --weights runs/X/generator.safetensors \\
        --manifest data/photos/manifest.csv --report reports/bbox256/report.md --report reports/free256/report.md

Writes ``src/deepfill/assets/deepfill_v1.safetensors`` (fp16) and ``deepfill_v1.json``: the
training history (steps, images seen, hardware per stretch), the data with its licenses, and
the mean tables of the evaluation reports, and the weights' detail weights (calibrate a
candidate with ``python -m deepfill.calibration --images TRAINING_PHOTOS --weights W --card
W.json`` before evaluating it; without them the default blending is Poisson blending).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

import torch

from deepfill.weights.io import BUNDLED_WEIGHTS, load_generator, save_generator


def data_summary(manifest: Path) -> dict:
    """Per split and package: image count and the licenses the package states."""
    summary: dict = {"train": defaultdict(lambda: {"images": 0, "licenses": set()}),
                     "val": defaultdict(lambda: {"images": 0, "licenses": set()})}
    with open(manifest, newline="") as fh:
        for row in csv.DictReader(fh):
            entry = summary[row["split"]][f"{row['package']} {row['package_version']}"]
            entry["images"] += 1
            entry["licenses"].add(row["license"])
    return {split: {pkg: {"images": e["images"], "licenses": sorted(e["licenses"])} for pkg, e in sorted(pkgs.items())}
            for split, pkgs in summary.items()}


def mean_table(report: Path) -> tuple[str, list[str]]:
    """The protocol name and the lines of the "Mean per method" table of a report.md."""
    text = report.read_text()
    protocol = re.search(r"^# deepfill evaluation: (\S+)", text, re.M).group(1)
    section = text.split("## Mean per method", 1)[1].strip().splitlines()
    return protocol, [line for line in section if line.startswith("|")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--report", type=Path, action="append", default=[])
    parser.add_argument("--history", type=Path, help="JSON list of earlier stretches to put first")
    parser.add_argument("--status", default="", help="one honest sentence on what the model can and cannot do")
    args = parser.parse_args()

    generator, card = load_generator(args.weights)
    history = json.loads(args.history.read_text()) if args.history else []
    history += card.get("training_history", [])
    evaluation = dict(mean_table(report) for report in args.report)
    shipped = {
        "name": "deepfill-v1 (deepfill photo set)",
        "trained": True,
        "status": args.status,
        "steps": sum(s["steps"] for s in history),
        "images_seen": sum(s["images_seen"] for s in history),
        "training_history": history,
        **({"averaged_steps": card["averaged_steps"]} if "averaged_steps" in card else {}),
        "data": {"built_by": "tools/photoset (Debian packages, docs/design.md §3)", **data_summary(args.manifest)},
        "data_license_note": "The weights were trained on the photos listed under data.train; their licenses "
                             "(as stated by each Debian package) are listed with them.",
        "evaluation": evaluation,
        "train_config": card.get("train_config", {}),
        **({"detail_weights": card["detail_weights"]} if "detail_weights" in card else {}),
    }
    save_generator(generator, BUNDLED_WEIGHTS, shipped, dtype=torch.float16)
    size = BUNDLED_WEIGHTS.stat().st_size / 1e6
    print(f"wrote {BUNDLED_WEIGHTS} ({size:.1f} MB) and its card; {shipped['steps']} steps, "
          f"{shipped['images_seen']} images seen")
    if "detail_weights" not in shipped:
        print("warning: the weights have no detail weights: calibrated blending is Poisson blending for them "
              "(python -m deepfill.calibration measures them)")


if __name__ == "__main__":
    main()
