"""The int8-arithmetic model: built once per installation from the shipped file, named by what
changes its output, never half-written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag.providers import quantized_model


@pytest.fixture
def builds(monkeypatch) -> list[Path]:
    """Record builds instead of quantizing (the real build is exercised by ``make setup``)."""
    done: list[Path] = []

    def fake_build(source: Path, target: Path) -> None:
        done.append(target)
        target.write_bytes(b"model of " + source.read_bytes())

    monkeypatch.setattr(quantized_model, "_build", fake_build)
    return done


def test_built_once_then_reused(tmp_path, builds):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"weights")
    first = quantized_model.quantized_model(source, tmp_path / "cache")
    again = quantized_model.quantized_model(source, tmp_path / "cache")
    assert first == again and first.read_bytes() == b"model of weights"
    assert builds == [first]


def test_a_different_source_or_onnxruntime_makes_another_file(tmp_path, builds, monkeypatch):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"weights")
    first = quantized_model.quantized_model(source, tmp_path)
    source.write_bytes(b"other weights")
    second = quantized_model.quantized_model(source, tmp_path)
    monkeypatch.setattr(quantized_model.ort, "__version__", "0.0.1")
    third = quantized_model.quantized_model(source, tmp_path)
    assert len({first, second, third}) == 3 and len(builds) == 3


def test_processes_starting_together_build_it_once(tmp_path, builds):
    source = tmp_path / "model.onnx"
    source.write_bytes(b"weights")
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(quantized_model.quantized_model(source, tmp_path)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 1 and len(builds) == 1


def test_the_default_place_is_beside_the_virtualenv():
    import sys

    assert quantized_model.default_cache_dir().is_relative_to(Path(sys.prefix))
