"""The recording benchmarks run end to end (smoke runs; their figures are in the study README)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "studies" / "bench_recording"


@pytest.mark.slow
@pytest.mark.parametrize("store", ["disk", "device"])
def test_large_layer_study_records_designs_and_fits_from_its_store(tmp_path, store):
    out = tmp_path / "large.json"
    subprocess.run([sys.executable, str(STUDY / "large_layer.py"), "--quick", "--dir", str(tmp_path),
                    "--store", store, "--out", str(out)], check=True, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    assert result["rows"] == 200 and result["n_nonzero"] > 0 and result["passes"] >= 3
    assert result["peak_anonymous_gb"] < result["ram_gb"] and result["store"] == store
    assert (result["disk_read_gbs"] > 0) == (store == "disk")  # NaN: no disk read for a device store


@pytest.mark.slow
def test_recording_benchmark_times_every_kind(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(STUDY / "run.py"), "--quick", "--models", "mlp-64-128-64-10",
                    "--steps", "20", "--warmup", "5", "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    summary = json.loads(out.read_text())["summary"]
    assert [row["kind"] for row in summary] == ["plain", "plain+forward", "recorded-memory",
                                                "recorded-disk"]
    assert all(row["median_step_ms"] > 0 for row in summary)
