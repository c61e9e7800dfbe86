"""CONTRIBUTING.md's "adding a dataset" and "adding a metric": the examples shown there are the files
tested here, registered through their entry-point groups as a plugin's would be, and run with the
default profile and dataset. Also: the built-in datasets and protocols come in the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import bench
from bench.cli import main
from bench.errors import BenchError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("example", ["example_dataset.py", "example_protocol.py"])
def test_contributing_shows_the_example_verbatim(example):
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "CONTRIBUTING.md").read_text(), flags=re.S)
    assert (REPO / "tests" / example).read_text() in blocks


@pytest.fixture()
def plugin(monkeypatch):
    """``plugin(group, name, value)``: an entry point as a package's ``pyproject.toml`` declares it,
    found by the registries (reloaded empty for the test) as an installed one would be."""
    import importlib.metadata as metadata

    import bench.data
    import bench.metrics

    added: list = []
    original = metadata.entry_points

    def entry_points(**selection):
        found = original(**selection)
        extra = [entry for entry in added if entry.group == selection.get("group")]
        return metadata.EntryPoints([*found, *extra]) if extra else found

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    for registry in (bench.data.REGISTRY, bench.metrics.protocols.REGISTRY):  # read again, with the plugin
        monkeypatch.setattr(registry, "items", {})
        monkeypatch.setattr(registry, "loaded", False)
    return lambda group, name, value: added.append(metadata.EntryPoint(name=name, value=value, group=group))


def test_the_built_in_datasets_and_protocols_come_through_their_entry_points(plugin):
    from bench.data import known_datasets
    from bench.metrics import known_protocols

    assert known_datasets() == ["coco", "flickr8k", "precomp", "synthetic"]
    assert known_protocols() == ["full", "coco1k", "coco5k"]


def test_an_entry_point_that_names_no_declared_loader_is_refused(plugin):
    from bench.data import known_datasets

    plugin("bench.datasets", "broken", "example_protocol:first_caption")
    with pytest.raises(BenchError, match="broken = example_protocol:first_caption.*@register_dataset"):
        known_datasets()


def _write_tsv(dataset, root: Path) -> None:
    """``dataset`` in the example's files: {split}.npy and {split}.tsv."""
    root.mkdir()
    for split in dataset.splits():
        np.save(root / f"{split.name}.npy", split.features)
        lines = [f"{row}\t{caption}\n" for row, caption in zip(split.caption_to_image, split.captions)]
        (root / f"{split.name}.tsv").write_text("".join(lines), encoding="utf-8")


def test_the_example_dataset_runs_through_bench_run(plugin, small_synthetic, tmp_path, capsys):
    from bench.data import load_dataset

    plugin("bench.datasets", "tsv", "example_dataset:load_tsv")
    root, splits, out = tmp_path / "tsv", tmp_path / "splits", tmp_path / "run"
    _write_tsv(small_synthetic, root)
    loaded = load_dataset("tsv", root)
    assert loaded.test.captions == small_synthetic.test.captions
    assert np.array_equal(loaded.train.features, small_synthetic.train.features)
    assert main(["data", "list"]) == 0 and "tsv " in capsys.readouterr().out

    assert main(["splits", "make", "--dataset", "tsv", "--root", str(root), "--fractions", "100",
                 "--dir", str(splits)]) == 0
    assert main(["run", "--dataset", "tsv", "--root", str(root), "--models", "cca", "--fractions", "100",
                 "--splits-dir", str(splits), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    [record] = [json.loads(path.read_text()) for path in (out / "records").glob("*.json")]
    assert record["status"] == "ok" and record["cell"]["dataset"] == "tsv" and record["cell"]["profile"] == "cpu"
    assert record["metrics"]["rsum"] > 55  # twice chance (about 26 with 60 test images)


def test_a_bad_example_file_is_one_clear_error(plugin, small_synthetic, tmp_path):
    from bench.data import load_dataset

    plugin("bench.datasets", "tsv", "example_dataset:load_tsv")
    root = tmp_path / "tsv"
    _write_tsv(small_synthetic, root)
    (root / "dev.tsv").write_text("0 no tab here\n")
    with pytest.raises(BenchError, match="each line of dev.tsv is an image row, a tab and a caption"):
        load_dataset("tsv", root)
    (root / "dev.tsv").unlink()
    with pytest.raises(BenchError, match="dev.tsv is missing"):
        load_dataset("tsv", root)


def test_the_example_protocol_scores_the_first_caption_of_each_image(plugin):
    from bench.metrics import evaluate, evaluate_protocol, random_embeddings

    plugin("bench.protocols", "first_caption", "example_protocol:first_caption")
    images, captions, links = random_embeddings(40, 5, 16, seed=3, signal=0.6)
    expected = evaluate(images, captions[::5], np.arange(40))
    assert evaluate_protocol(images, captions, links, "first_caption") == expected
    order = np.random.default_rng(0).permutation(len(links))  # captions not grouped by image
    first = np.array([np.flatnonzero(links[order] == image)[0] for image in range(40)])
    assert evaluate_protocol(images, captions[order], links[order], "first_caption") == evaluate(
        images, captions[order][first], np.arange(40))


def test_the_example_protocol_appears_in_the_records(plugin):
    plugin("bench.protocols", "first_caption", "example_protocol:first_caption")
    results = bench.evaluate("cca", fractions=[100], extra_protocols=["first_caption"])
    [record] = results.records
    assert record["status"] == "ok" and record["protocol"] == "full"
    assert set(record["metrics_by_protocol"]) == {"full", "first_caption"}
    assert record["metrics_by_protocol"]["full"] == record["metrics"]
    one_caption = record["metrics_by_protocol"]["first_caption"]
    assert one_caption != record["metrics"] and one_caption["rsum"] > 0
    with pytest.raises(BenchError, match="unknown evaluation protocol 'nope'"):
        bench.evaluate("cca", fractions=[100], extra_protocols=["nope"])
