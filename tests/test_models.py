"""The model registry: names, aliases, profiles, overrides and entry-point plugins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import bench.models.registry as registry
from bench.cli import main
from bench.models.config import ModelConfig, apply_overrides
from bench.errors import BenchError
from bench.models.registry import ModelSpec, get_model_spec, parse_model_names


def test_names_and_aliases_resolve():
    assert [s.name for s in parse_model_names("vse++,unimodel,jwae,cca")] == ["vse", "mine", "jwae", "cca"]
    with pytest.raises(BenchError, match="known models: asif, cca, jwae, mine, otalign, sue, vse"):
        get_model_spec("clip")


def test_profiles_differ_and_overrides_are_typed():
    spec = get_model_spec("vse")
    paper, cpu = spec.config_class.for_profile("paper"), spec.config_class.for_profile("cpu")
    assert paper.embed_size == 1024 and paper.epochs == 30 and cpu.epochs < paper.epochs
    changed = apply_overrides(cpu, {"epochs": "3", "max_violation": "false", "lr": "1e-3"})
    assert (changed.epochs, changed.max_violation, changed.lr) == (3, False, 1e-3)
    with pytest.raises(BenchError, match="unknown profile 'gpu'"):
        spec.config_class.for_profile("gpu")


def test_bench_models_lists_every_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("cca", "vse", "jwae", "mine"):
        assert f"\n{name}" in "\n" + out
    assert "with gru text, in every profile unless --set says otherwise: step1_mode=retrieval, stage1_epochs=0" in out
    assert "with gru text, in the cpu profile unless --set says otherwise: updates=2820" in out


@dataclass(frozen=True)
class _PluginConfig(ModelConfig):
    size: int = 3


def test_entry_point_plugins_are_registered(monkeypatch):
    spec = ModelSpec(name="plugin", factory=lambda config: None, config_class=_PluginConfig, summary="from a plugin")

    class _EntryPoint:
        def load(self):
            return lambda: [spec]

    import importlib.metadata

    def fake_entry_points(group=None):
        return [_EntryPoint()] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry.REGISTRY, "loaded", False)
    try:
        assert get_model_spec("plugin") is spec
    finally:
        registry.MODELS.pop("plugin", None)
