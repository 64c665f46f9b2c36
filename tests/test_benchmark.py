"""``deepfill benchmark`` measures the real model and writes what it measured."""

import json
from pathlib import Path

import pytest

from deepfill.benchmark import PRECISION_FLAGS, describe_machine
from deepfill.cli import main


def test_benchmark_writes_one_row_per_size_and_dtype(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--sizes", "96,128", "--dtypes", "float32", "--device", "cpu",
                 "--runs", "2", "--warmup", "0", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    rows = payload["results"]
    assert payload["machine"]["cpu_capability"] and payload["machine"]["processor"]
    assert [(r["size"], r["dtype"]) for r in rows] == [("96x96", "float32"), ("128x128", "float32")]
    assert all(0 < r["min_s"] <= r["median_s"] and r["runs"] == 2 and r["peak_rss_mb"] > 0 for r in rows)
    assert "128x128" in capsys.readouterr().out


def test_benchmark_rejects_unknown_dtypes(capsys):
    assert main(["benchmark", "--dtypes", "float8"]) != 0
    assert "unknown --dtypes float8" in capsys.readouterr().err


def test_benchmark_skips_dtypes_the_device_emulates(monkeypatch, capsys):
    import torch

    import deepfill.runtime

    monkeypatch.setattr(deepfill.runtime, "has_fast_kernels", lambda dtype, device: dtype == torch.float32)
    assert main(["benchmark", "--sizes", "96", "--dtypes", "float32,bfloat16", "--device", "cpu",
                 "--runs", "1", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "skipping bfloat16: this CPU has no fast bfloat16 kernels" in out
    assert "float32" in out.split("skipping")[0] and "bfloat16  cpu" not in out


def test_machine_description_lists_the_precision_flags_of_this_cpu():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = next(line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    assert describe_machine()["cpu_flags"] == [flag for flag in PRECISION_FLAGS if flag in flags]
