"""``benchmarks/gpu_check.py`` (``make gpu-check``): the table, the skips and the exit status."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the rows would run")
def test_without_cuda_every_row_is_skipped_and_it_exits_0(capsys) -> None:
    mod = _load()
    assert mod.main([]) == 0
    out = capsys.readouterr().out
    assert "CUDA is not available" in out
    for name, _ in mod.ROWS:
        assert name in out
    assert out.count("skipped") >= len(mod.ROWS) and "pass" not in out


@pytest.mark.slow
def test_the_rows_pass_on_the_cpu(capsys, monkeypatch) -> None:
    monkeypatch.delenv("DREAMCS_SD_PATH", raising=False)
    mod = _load()
    assert mod.main(["--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("pass") >= 6 and "FAIL" not in out


def test_a_failing_row_makes_it_exit_1(capsys, monkeypatch) -> None:
    mod = _load()

    def broken(self) -> str:
        raise AssertionError("broken on purpose")

    monkeypatch.setattr(mod, "ROWS", [("cuda", "cuda"), ("broken", "broken")])
    monkeypatch.setattr(mod.Checks, "broken", broken, raising=False)
    assert mod.main(["--device", "cpu"]) == 1
    assert "broken on purpose" in capsys.readouterr().out
