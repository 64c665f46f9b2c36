"""Scripts that run outside the test machine's reach, smoke-tested here so they do not rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import photo

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_and_train_runs_every_stage_on_a_cpu(tmp_path):
    """scripts/gpu_benchmark_and_train.sh (meant for a GPU) with tiny settings: every stage writes its file."""
    data = tmp_path / "photos512"
    for split, count in (("train", 4), ("val", 2)):
        (data / split).mkdir(parents=True)
        for i in range(count):
            photo(160, 128, seed=i + (10 if split == "val" else 0)).save(data / split / f"p{i}.jpg")
    (data / "train.flist").write_text("".join(f"train/p{i}.jpg\n" for i in range(4)))
    out = tmp_path / "out"
    env = {**os.environ, "DEVICE": "cpu", "SMOKE": "1", "OUT": str(out), "DATA": str(data), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "scripts/gpu_benchmark_and_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"latency.json", "train_throughput.json", "generator.safetensors",
                                               "generator.json", "bbox256.csv"}  # 2 steps log no metrics
    bundled = json.loads((ROOT / "src/deepfill/assets/deepfill_v1.json").read_text())
    assert json.loads((out / "generator.json").read_text())["steps"] == bundled["steps"] + 2  # from --init


def test_averaged_weights_are_uncalibrated(tmp_path):
    """The mean of two exports is another model: it must not inherit an input's detail weights."""
    from deepfill.weights.io import BUNDLED_WEIGHTS, load_generator

    inputs = []
    for step in (10, 20):
        path = tmp_path / f"step-{step}.safetensors"
        path.write_bytes(BUNDLED_WEIGHTS.read_bytes())
        card = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps({**card, "steps": step}))
        inputs.append(str(path))
    out = tmp_path / "mean.safetensors"
    result = subprocess.run([sys.executable, "scripts/average_weights.py", str(out), *inputs], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    _, card = load_generator(out)
    assert "detail_weights" not in card and card["averaged_steps"] == [10, 20]
    assert "detail_weights" in json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
