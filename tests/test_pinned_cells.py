"""Fixed-seed CPU cells of every neural model, pinned: a refactor must not change a number.

Each case fits one model for two short epochs on small synthetic data (one torch thread, seed
0) and compares the whole validation curve (every loss and dev metric, per epoch) and the test
metrics with ``tests/pinned_cells.json``. The file was written by the code before the
one-shape refactor and is refreshed only for an intended change of behaviour:
``python tests/test_pinned_cells.py --update`` (say why in the commit). Bit-exact numbers hold
within one numeric platform (``bench.run.provenance.numeric_platform``: torch's kernels and numpy's BLAS core; AVX2 and AVX-512
machines sum float products in other orders), so the file keeps one set of pins per platform. On a platform without
pins the test still checks that a rerun gives the same numbers in the pinned layout, then skips,
saying how to add pins.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

PINNED = Path(__file__).with_name("pinned_cells.json")
TINY = {
    "vse": {"embed_size": "48", "word_dim": "16", "epochs": "2", "batch_size": "32", "lr_decay_epoch": "1",
            "min_count": "1"},
    "jwae": {"embed_size": "48", "word_dim": "16", "epochs": "2", "batch_size": "32", "unpaired_batch_size": "32",
             "lr_decay_epoch": "1", "image_decoder_hidden": "32,32", "decoder_word_dim": "16",
             "decoder_hidden": "32", "sentence_decoder_hidden": "32", "min_count": "1"},
    "mine": {"image_embed_dim": "32", "image_hidden": "32", "text_embed_dim": "32", "word_dim": "16",
             "decoder_hidden": "32", "decoder_layers": "1", "latent_dim": "16", "step2_hidden": "32",
             "step2_blocks": "1", "critic_hidden": "16", "batch_size": "32", "stage1_epochs": "1", "epochs": "2",
             "lr": "2e-3", "stage1_lr": "2e-3", "lr_decay_epoch": "1", "min_count": "1", "dropout": "0.1",
             "w_unpaired_retrieval": "0.1"},
}
# (model, text encoder, mine's step1_mode or "" for the profile's): with GRU text mine defaults to
# "retrieval"; "finetune" keeps the pin the GRU case had before that default
CASES = [(model, text, "") for model in TINY for text in ("gru", "minilm")] + [("mine", "gru", "finetune")]


def case_name(model_name: str, text_encoder: str, step1_mode: str) -> str:
    return f"{model_name}-{text_encoder}" + (f"-{step1_mode}" if step1_mode else "")


def run_case(model_name: str, text_encoder: str, step1_mode: str, workdir: Path) -> dict:
    import torch

    from bench.data.synthetic import generate
    from bench.metrics import evaluate
    from bench.models import FitContext
    from bench.models.registry import get_model_spec
    from bench.splits import subsets
    from bench.splits import make_split

    torch.set_num_threads(1)
    dataset = generate(seed=0, n_train=200, n_dev=40, n_test=40, feature_dim=48, preset="easy")
    paired, unpaired = subsets(dataset, make_split(dataset, 25, 0, "overlap"))
    spec = get_model_spec(model_name)
    settings = {**TINY[model_name], "text_encoder": text_encoder, **({"step1_mode": step1_mode} if step1_mode else {})}
    config = spec.config_class.for_profile("paper", settings)
    model = spec.factory(config)
    result = model.fit(paired, unpaired, FitContext(validation=dataset.dev, workdir=workdir, seed=0))
    test = evaluate(model.embed_images(dataset.test.features), model.embed_captions(dataset.test.captions),
                    dataset.test.caption_to_image)
    return {"curve": result.validation_curve, "best_epoch": result.best_epoch, "test": test.to_dict()}


def _close(expected, actual, where: str, values: bool = True) -> None:
    """The same keys and list lengths, and (with ``values``) the same numbers; without ``values`` only
    the layout is compared, for pins of another numeric platform."""
    if isinstance(expected, dict):
        assert set(expected) == set(actual), f"{where}: keys {sorted(set(expected) ^ set(actual))}"
        for key in expected:
            _close(expected[key], actual[key], f"{where}.{key}", values)
    elif isinstance(expected, list):
        assert len(expected) == len(actual), where
        for i, (e, a) in enumerate(zip(expected, actual)):
            _close(e, a, f"{where}[{i}]", values)
    elif not values:
        return
    elif isinstance(expected, float):
        assert math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-9), f"{where}: {actual} != {expected}"
    else:
        assert expected == actual, f"{where}: {actual} != {expected}"


@pytest.mark.parametrize("model_name,text_encoder,step1_mode", CASES)
def test_fixed_seed_cell_is_unchanged(model_name, text_encoder, step1_mode, tmp_path, fake_minilm):
    from conftest import pins_for, skip_unpinned

    name = case_name(model_name, text_encoder, step1_mode)
    platforms = json.loads(PINNED.read_text())["platforms"]
    platform, pins = pins_for(platforms)
    actual = run_case(model_name, text_encoder, step1_mode, tmp_path / "first")
    if pins is None:
        # Without pins the check that needs no pins still runs: the same seed gives the same numbers
        # twice on this machine, in the pinned layout. Only then does the test skip.
        _close(actual, run_case(model_name, text_encoder, step1_mode, tmp_path / "second"), f"{name} (rerun)")
        _close(next(iter(platforms.values()))[name], actual, f"{name} (layout)", values=False)
        skip_unpinned(platform, "tests/pinned_cells.json", "python tests/test_pinned_cells.py --update")
    _close(pins[name], actual, name)


def test_a_platform_without_pins_still_checks_a_rerun(monkeypatch, tmp_path, fake_minilm):
    import bench.run.provenance

    monkeypatch.setattr(bench.run.provenance, "cpu_capability", lambda: "NO-SUCH-PLATFORM")
    monkeypatch.setattr(bench.run.provenance, "numeric_platform", lambda: "NO-SUCH-PLATFORM/none")
    with pytest.raises(pytest.skip.Exception, match="no pins for this numeric platform"):
        test_fixed_seed_cell_is_unchanged("vse", "minilm", "", tmp_path, fake_minilm)


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_pinned_cells.py --update")
    import tempfile

    import bench.nn.sentences as sentences

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import fake_sentence_vectors

    from bench.run.provenance import numeric_platform

    sentences.encode_sentences = fake_sentence_vectors
    pinned = {}
    for case in CASES:
        with tempfile.TemporaryDirectory() as folder:
            pinned[case_name(*case)] = run_case(*case, Path(folder))
    # only this machine's platform is rewritten; the others' pins stay as they are
    content = json.loads(PINNED.read_text())
    content["platforms"][numeric_platform()] = pinned
    PINNED.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
