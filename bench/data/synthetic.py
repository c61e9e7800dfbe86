"""``synthetic``: the embedded default dataset, generated from a seed.

Each image is a scene of four latent concepts: an object, a colour, an action and a
place. Its "CNN features" are a ReLU of the sum of the concepts' prototype vectors
plus a per-image nuisance vector and noise, so they are non-negative like pooled CNN
features and the concepts are only linearly recoverable with noise. Each caption
renders the same concepts as a templated sentence, with synonyms, optional filler,
dropped attributes and word noise. Retrieval is therefore learnable, more pairs help,
and unpaired images and captions each carry the concept structure on their own.

The same options give byte-identical data (NumPy's PCG64 streams, float32 features).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import register_dataset
from bench.data.types import Dataset, Split

# Each concept is a list of synonyms; the first is the canonical word.
OBJECTS = [
    ["dog", "puppy", "hound"], ["cat", "kitten"], ["man", "guy", "gentleman"], ["woman", "lady"],
    ["child", "kid", "youngster"], ["girl", "young girl"], ["boy", "young boy"], ["horse", "pony"],
    ["bird", "sparrow"], ["bicycle", "bike", "cycle"], ["car", "automobile", "vehicle"], ["boat", "ship"],
    ["ball", "football"], ["surfer", "wave rider"], ["skier", "snowboarder"], ["cow", "calf"],
    ["bus", "coach"], ["train", "locomotive"], ["truck", "lorry"], ["sheep", "lamb"],
]
COLOURS = [
    ["red", "crimson"], ["blue", "navy"], ["green", "emerald"], ["yellow", "golden"],
    ["black", "dark"], ["white", "pale"], ["brown", "tan"], ["orange", "amber"],
]
ACTIONS = [
    ["running", "sprinting"], ["jumping", "leaping"], ["sitting", "resting"], ["swimming", "paddling"],
    ["playing", "frolicking"], ["standing", "waiting"], ["walking", "strolling"], ["climbing", "scaling"],
    ["sleeping", "napping"], ["riding", "cruising"],
]
PLACES = [
    ["beach", "shore", "seaside"], ["park", "garden"], ["street", "road"], ["field", "meadow"],
    ["snow", "slope"], ["water", "lake"], ["forest", "woods"], ["city", "town"],
    ["grass", "lawn"], ["desert", "sand dunes"],
]
FILLERS = ["a photo of", "there is", "we can see", "an image of", "look at"]
NOISE_WORDS = ["very", "quite", "some", "big", "small", "old", "young", "near", "with", "and"]
TEMPLATES = [
    "{det} {colour} {object} {action} on the {place}",
    "{det} {object} in {colour} is {action} in the {place}",
    "{colour} {object} {action} near a {place}",
    "the {object} is {action} at the {place}",
    "{det} {colour} {object} {action}",
    "{action} {object} by the {place}",
]


def _concept_tables() -> list[list[list[str]]]:
    return [OBJECTS, COLOURS, ACTIONS, PLACES]


def _render_caption(rng: np.random.Generator, concepts: np.ndarray) -> str:
    obj, colour, action, place = (table[c] for table, c in zip(_concept_tables(), concepts))
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    words = template.format(
        det=pick(["a", "one", "the"]), colour=pick(colour), object=pick(obj), action=pick(action), place=pick(place)
    ).split()
    if rng.random() < 0.3:
        words = pick(FILLERS).split() + words
    # Word noise: a few words replaced by an unrelated one, a few dropped.
    words = [pick(NOISE_WORDS) if rng.random() < 0.05 else w for w in words if rng.random() >= 0.05]
    return " ".join(words) + " ."


def generate(
    seed: int = 0,
    n_train: int = 2000,
    n_dev: int = 250,
    n_test: int = 250,
    captions_per_image: int = 5,
    feature_dim: int = 256,
    noise: float = 0.6,
) -> Dataset:
    root_seq = np.random.SeedSequence(seed)
    proto_seq, *split_seqs = root_seq.spawn(4)
    proto_rng = np.random.default_rng(proto_seq)
    sizes = [len(t) for t in _concept_tables()]
    prototypes = [proto_rng.standard_normal((n, feature_dim)).astype(np.float32) for n in sizes]
    nuisance_basis = proto_rng.standard_normal((8, feature_dim)).astype(np.float32)
    # Concepts are not equally common (Zipf-like), as in real captions.
    frequencies = [1.0 / np.arange(1, n + 1) ** 0.7 for n in sizes]
    frequencies = [f / f.sum() for f in frequencies]

    splits = []
    for name, n_images, seq in zip(("train", "dev", "test"), (n_train, n_dev, n_test), split_seqs):
        rng = np.random.default_rng(seq)
        concepts = np.stack([rng.choice(n, size=n_images, p=p) for n, p in zip(sizes, frequencies)], axis=1)
        signal = sum(prototypes[k][concepts[:, k]] for k in range(4))
        nuisance = rng.standard_normal((n_images, nuisance_basis.shape[0])).astype(np.float32) @ nuisance_basis
        features = np.maximum(signal + 0.5 * nuisance + noise * rng.standard_normal(signal.shape), 0.0)
        image_ids = [f"syn-{name}-{i:06d}" for i in range(n_images)]
        captions = [_render_caption(rng, concepts[i]) for i in range(n_images) for _ in range(captions_per_image)]
        splits.append(
            Split(
                name=name,
                image_ids=image_ids,
                features=features.astype(np.float32),
                caption_ids=[f"{iid}#{k}" for iid in image_ids for k in range(captions_per_image)],
                captions=captions,
                caption_to_image=np.repeat(np.arange(n_images, dtype=np.int64), captions_per_image),
            )
        )
    options = dict(seed=seed, n_train=n_train, n_dev=n_dev, n_test=n_test,
                   captions_per_image=captions_per_image, feature_dim=feature_dim, noise=noise)
    return Dataset(
        name="synthetic",
        train=splits[0],
        dev=splits[1],
        test=splits[2],
        description="seeded synthetic scenes: 4 latent concepts rendered as features and templated captions",
        source={"generator": "bench.data.synthetic", "options": options},
    )


@register_dataset("synthetic", "seeded synthetic scenes (default; needs no files)", needs_root=False)
def load_synthetic(root: Path | None = None, **options) -> Dataset:
    return generate(**options)
