"""``make gpu-check`` (``e2h_utils.pipeline.gpu_check``): the refusal without CUDA, the pure
comparison on synthetic scores, and one end-to-end run on the CPU "device" with a few items."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from e2h_utils.pipeline import gpu_check
from e2h_utils.pipeline.gpu_check import compare


def test_refuses_without_cuda_in_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1, lines
    assert "no CUDA device" in lines[0] and "make gpu-check" in lines[0]


def test_refuses_an_explicit_cuda_device_without_cuda(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


REFERENCE = [np.array([-1.0, -5.0, -9.0]), np.array([-2.0, -2.1, -8.0]), np.array([-3.0, -7.0])]


def test_compare_passes_within_tolerance():
    other = [r + np.array([0.2, -0.3, 0.1][: len(r)]) for r in REFERENCE]
    result = compare(REFERENCE, other, tolerance=0.5)
    assert result.passed and math.isclose(result.max_abs_delta, 0.3)
    assert (result.n_items, result.n_decisive, result.n_near_ties) == (3, 2, 1)
    assert "same prediction" in result.reason


def test_compare_fails_outside_tolerance():
    other = [r.copy() for r in REFERENCE]
    other[2][1] += 0.8  # no prediction changes, but the delta exceeds the tolerance
    result = compare(REFERENCE, other, tolerance=0.5)
    assert not result.passed and math.isclose(result.max_abs_delta, 0.8) and not result.mismatches
    assert "> tolerance" in result.reason


def test_compare_excludes_near_ties_from_the_prediction_check():
    other = [r.copy() for r in REFERENCE]
    other[1] = np.array([-2.1, -2.0, -8.0])  # item 1's margin 0.1 < tolerance: a flip there is allowed
    result = compare(REFERENCE, other, tolerance=0.5)
    assert result.passed and result.mismatches == () and result.n_near_ties == 1


def test_compare_fails_a_flip_on_a_decisive_item():
    # margin 1.5 > tolerance 1: decisive; each score moves by 0.8 (within tolerance) yet the prediction flips
    result = compare([np.array([-1.0, -2.5])], [np.array([-1.8, -1.7])], tolerance=1.0)
    assert not result.passed and result.mismatches == (0,) and result.max_abs_delta <= 1.0
    assert "predict another choice" in result.reason and "> tolerance" not in result.reason


def test_compare_fails_non_finite_scores_and_rejects_mismatched_shapes():
    other = [r.copy() for r in REFERENCE]
    other[0][0] = np.nan
    result = compare(REFERENCE, other, tolerance=100.0)
    assert not result.passed and not result.finite and result.max_abs_delta == math.inf
    with pytest.raises(ValueError):
        compare(REFERENCE, REFERENCE[:2], tolerance=1.0)
    with pytest.raises(ValueError):
        compare(REFERENCE, [REFERENCE[0], REFERENCE[1], np.array([-3.0])], tolerance=1.0)


def test_every_precision_states_a_tolerance_and_why():
    for name, precision in gpu_check.PRECISIONS.items():
        assert precision.name == name and precision.tolerance > 0 and precision.justification
    assert gpu_check.quantization_unsupported("cpu", "none") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_quantization_on_a_missing_cuda_device_is_reported_not_raised():
    reason = gpu_check.quantization_unsupported("cuda", "8bit")
    assert reason and "8bit" in reason


EXPECTED_CHECKS = {"precision:bf16", "precision:fp16", "precision:8bit", "precision:4bit", "qlora_step:8bit",
                   "qlora_step:4bit", "device_map_split"}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU split check runs only where CUDA is absent")
def test_end_to_end_on_the_cpu_device(mirror, tmp_path, monkeypatch):
    """bf16 and 8-bit run on the CPU; 4-bit is made unsupported (skipped with its reason; bitsandbytes'
    CPU backend runs it, but its QLoRA step fails here: see the module docstring), fp16 not selected;
    the QLoRA step runs on the 8-bit base and the split goes to CPU + disk."""
    real = gpu_check.quantization_unsupported

    def unsupported(device, quantization):
        return "bitsandbytes cannot run 4bit here (test)" if quantization == "4bit" else real(device, quantization)

    monkeypatch.setattr(gpu_check, "quantization_unsupported", unsupported)
    out = tmp_path / "gpu_check.json"
    code = gpu_check.main(["--device", "cpu", "--items", "4", "--precisions", "bf16,8bit,4bit", "--gen-tokens", "4",
                           "--gen-prompts", "1", "--out", str(out)])
    report = json.loads(out.read_text())
    assert code == (0 if report["passed"] else 1)
    assert {"schema", "passed", "device", "created", "elapsed_s", "environment", "items", "checks", "rates",
            "quantized_speed"} <= set(report)
    assert report["device"] == "cpu" and report["items"]["n"] == 4 and len(report["items"]["ids"]) == 4
    assert {"torch", "transformers", "bitsandbytes", "gpu_name", "gpu_memory_bytes"} <= set(report["environment"])
    checks = report["checks"]
    assert set(checks) == EXPECTED_CHECKS
    assert checks["precision:4bit"]["status"] == "skipped" and "test" in checks["precision:4bit"]["reason"]
    assert checks["qlora_step:4bit"]["status"] == "skipped"
    assert checks["precision:fp16"]["status"] == "skipped"
    for name in ("precision:bf16", "precision:8bit"):
        check = checks[name]
        assert check["status"] == "passed", check
        assert check["max_abs_delta"] <= check["tolerance"] and check["n_items"] == 4
    step = checks["qlora_step:8bit"]
    assert step["status"] == "passed" and step["quantization"] == "8bit"
    assert all(math.isfinite(x) for x in step["losses"]) and step["lora_max_change"] > 0
    split = checks["device_map_split"]
    assert split["status"] == "passed" and {"cpu", "disk"} <= set(split["layout"])
    rates = report["rates"]
    assert {"reference", "bf16", "8bit"} <= set(rates["scoring_tokens_per_s"])
    assert set(rates["generation_tokens_per_s"]) == {"bf16", "8bit"} and rates["training_tokens_per_s"]["8bit"] > 0
    assert report["quantized_speed"]["none"] == 1.0 and report["quantized_speed"]["4bit"] is None
    assert report["quantized_speed"]["8bit"] > 0
