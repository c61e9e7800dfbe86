"""Split files: which training images are paired, and what the unpaired pools hold.

One JSON file per (dataset, policy, fraction, seed). The paired set is a prefix of the
training images ordered by ``sha256(seed, image id)``, so it depends only on the ids and
the seed (no RNG whose stream could change between library versions) and the sets are
nested: 10 % ⊂ 25 % ⊂ 50 % ⊂ 100 %. Fractions are of training images; an image's
captions always go with it.

Policies:

``overlap`` (the paper's setting)
    every training image is in the unpaired image pool and every training caption in
    the unpaired caption pool; the links are hidden, not removed.
``disjoint``
    the unpaired pools come only from the images that are not paired, and each such image
    gives either its picture or its captions (a fixed hash coin per image), so no hidden
    pair exists anywhere in the unpaired data.

The unpaired caption pool is stored as the ids of the images whose captions form it
(all of an image's captions go together), which keeps the files small;
:meth:`PairingSplit.unpaired_caption_ids` expands it.

Two options change the unpaired pools (:class:`PoolSpec`) and appear in the file name:

``unpaired_fraction`` (``_u25``)
    keeps that share of each pool: a prefix of the pool ordered by another hash of
    ``(seed, id)``, so 0 % ⊂ 25 % ⊂ 50 % ⊂ 100 % as for the paired sets. At 0 % there is no
    unpaired item at all.
extra sources (``+coco-text``)
    captions or image features from outside the dataset (:mod:`bench.data.extra`), added
    to the unpaired pools only (and cut by ``unpaired_fraction`` the same way). The file
    records each source's file checksum and the checksum of the ids it keeps, not the ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.data.extra import ExtraSource, check_not_held_out, ids_sha256
from bench.data.types import Dataset
from bench.errors import BenchError
from bench.io import atomic_write_text, json_type, read_json_file, to_json
from bench.models.interface import PairedData, UnpairedData
from bench.splits.names import format_fraction, parse_fraction, split_filename

POLICIES = ("overlap", "disjoint")
FORMAT_VERSION = 1


def default_splits_dir() -> Path:
    """``BENCH_SPLITS_DIR``, else the repository's ``splits/`` folder."""
    import os

    env = os.environ.get("BENCH_SPLITS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "splits"  # the repository's splits/


@dataclass(frozen=True, eq=False)
class PoolSpec:
    """What a split keeps of the unpaired pools: a share of them, plus items from extra sources."""

    unpaired_fraction: float = 100.0
    extras: tuple[ExtraSource, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(source.tag for source in self.extras)

    def key(self) -> tuple:
        return (self.unpaired_fraction, self.tags)


def _prefix(ids: list[str], seed: int, salt: str, fraction: float) -> list[str]:
    """The first ``fraction`` % of ``ids`` in the order of ``sha256(seed, salt, id)``: nested in ``fraction``."""
    ordered = sorted(ids, key=lambda item: _order_key(seed, salt, item))
    return ordered[: int(round(len(ordered) * fraction / 100.0))]


def kept_extra_rows(source: ExtraSource, seed: int, unpaired_fraction: float) -> list[int]:
    """Rows of ``source`` (in file order) that a split with this seed and unpaired fraction keeps."""
    kept = set(_prefix(source.ids, seed, f"extra-{source.tag}", unpaired_fraction))
    return [row for row, item in enumerate(source.ids) if item in kept]


def describe_extra(source: ExtraSource, seed: int, unpaired_fraction: float) -> dict:
    rows = kept_extra_rows(source, seed, unpaired_fraction)
    return {"tag": source.tag, "modality": source.modality, "kind": source.kind, "path": source.path,
            "file_sha256": source.file_sha256, "available": len(source), "kept": len(rows),
            "kept_ids_sha256": ids_sha256([source.ids[r] for r in rows])}


def _order_key(seed: int, salt: str, image_id: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{salt}\x00{image_id}".encode()).digest()


@dataclass(frozen=True)
class PairingSplit:
    dataset: str
    policy: str
    fraction: float  # percent of training images that are paired, in (0, 100]
    seed: int
    dataset_ids_sha256: str
    paired_image_ids: list[str]
    unpaired_image_ids: list[str]
    unpaired_caption_image_ids: list[str]
    format_version: int = FORMAT_VERSION
    unpaired_fraction: float = 100.0  # share of the unpaired pools kept (see PoolSpec)
    extra_unpaired: list[dict] = field(default_factory=list)  # describe_extra() of each extra source

    # -- derived views -------------------------------------------------------------
    def unpaired_caption_ids(self, dataset: Dataset) -> list[str]:
        train = dataset.train
        wanted = {train.image_index[i] for i in self.unpaired_caption_image_ids}
        return [cid for cid, row in zip(train.caption_ids, train.caption_to_image) if int(row) in wanted]

    @property
    def extra_tags(self) -> tuple[str, ...]:
        return tuple(extra["tag"] for extra in self.extra_unpaired)

    @property
    def filename(self) -> str:
        return split_filename(self.dataset, self.policy, self.fraction, self.seed, self.unpaired_fraction,
                              self.extra_tags)

    def to_json(self) -> str:
        data = asdict(self)
        # Written only when they differ from the default, so plain split files keep their bytes.
        if data["unpaired_fraction"] == 100:
            del data["unpaired_fraction"]
        if not data["extra_unpaired"]:
            del data["extra_unpaired"]
        data["counts"] = {
            "paired_images": len(self.paired_image_ids),
            "unpaired_images": len(self.unpaired_image_ids),
            "unpaired_caption_images": len(self.unpaired_caption_image_ids),
        }
        return to_json(data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_file(cls, path: str | Path) -> "PairingSplit":
        """Read and check a split file: any unreadable, malformed or wrongly shaped file is a
        :class:`BenchError` that names the file and what is wrong with it."""
        path = Path(path)
        remake = "recreate it with `bench splits make`"
        data = read_json_file(path, "split file", remake)
        problem = _shape_problem(data)
        if problem:
            raise BenchError(f"split file {path} {problem}; {remake}")
        data.pop("counts", None)
        return cls(**data)

    # -- checks --------------------------------------------------------------------
    def check_matches(self, dataset: Dataset, path: str | Path | None = None) -> None:
        where = f" ({path})" if path else ""
        if self.dataset != dataset.name or self.dataset_ids_sha256 != dataset.ids_sha256:
            raise BenchError(
                f"split file{where} was made for dataset '{self.dataset}' with id hash {self.dataset_ids_sha256[:12]}…, "
                f"but the loaded '{dataset.name}' data hashes to {dataset.ids_sha256[:12]}…; "
                "use the split files made for this data or run `bench splits make` for it"
            )
        try:
            check_no_leakage(self, dataset)
        except BenchError as error:
            if path is None:
                raise
            raise BenchError(f"split file {path}: {error}") from None

    def check_extras(self, extras: tuple[ExtraSource, ...], path: str | Path | None = None) -> None:
        """The extra sources given now are the ones this split was made with, byte for byte."""
        where = f" {path}" if path else ""
        given = {source.tag: source for source in extras}
        if set(given) != set(self.extra_tags):
            raise BenchError(f"split file{where} was made with extra sources {list(self.extra_tags) or 'none'}, "
                             f"but {list(given) or 'none'} were given")
        for extra in self.extra_unpaired:
            source = given[extra["tag"]]
            if source.file_sha256 != extra["file_sha256"]:
                raise BenchError(
                    f"extra unpaired {source.modality} {source.path} differ from the file split{where} was made "
                    f"with (checksum {source.file_sha256[:12]}… vs {extra['file_sha256'][:12]}…); remake the split")


_ID_LISTS = ("paired_image_ids", "unpaired_image_ids", "unpaired_caption_image_ids")
_REQUIRED = ("dataset", "policy", "fraction", "seed", "dataset_ids_sha256") + _ID_LISTS


def _shape_problem(data: object) -> str | None:
    """What is wrong with the shape of a parsed split file, or None when it has the right one."""
    if not isinstance(data, dict):
        return f"holds {json_type(data)}, not an object with the fields {', '.join(_REQUIRED)}"
    missing = [name for name in _REQUIRED if name not in data]
    if missing:
        return f"lacks the field(s) {', '.join(missing)}"
    unexpected = sorted(set(data) - set(_REQUIRED) - {"format_version", "counts", "unpaired_fraction",
                                                      "extra_unpaired"})
    if unexpected:
        return f"has unexpected field(s) {', '.join(unexpected)}"
    for name in ("dataset", "dataset_ids_sha256"):
        if not isinstance(data[name], str) or not data[name]:
            return f"has {name} {json_type(data[name])}; expected a non-empty string"
    if data["policy"] not in POLICIES:
        return f"has policy {data['policy']!r}; expected one of {', '.join(POLICIES)}"
    fraction = data["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 100:
        return f"has fraction {fraction!r}; expected a percentage in (0, 100]"
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
        return f"has seed {data['seed']!r}; expected an integer"
    for name in _ID_LISTS:
        ids = data[name]
        if not isinstance(ids, list):
            return f"has {name} {json_type(ids)}; expected a list of image ids"
        wrong = [i for i in ids if not isinstance(i, str)]
        if wrong:
            return f"has {json_type(wrong[0])} {wrong[0]!r} in {name}; expected image ids (strings)"
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION or isinstance(version, bool):
        return f"has format_version {version!r}; this harness reads version {FORMAT_VERSION}"
    share = data.get("unpaired_fraction", 100.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 100:
        return f"has unpaired_fraction {share!r}; expected a percentage in [0, 100]"
    extras = data.get("extra_unpaired", [])
    if not isinstance(extras, list) or not all(
            isinstance(e, dict) and isinstance(e.get("tag"), str) and isinstance(e.get("file_sha256"), str)
            for e in extras):
        return "has extra_unpaired that is not a list of sources with 'tag' and 'file_sha256'"
    if "counts" in data and not isinstance(data["counts"], dict):
        return f"has counts {json_type(data['counts'])}; expected an object"
    return None


def split_path(splits_dir: str | Path, dataset: str, policy: str, fraction: float, seed: int,
               pools: PoolSpec = PoolSpec()) -> Path:
    return Path(splits_dir) / dataset / split_filename(dataset, policy, fraction, seed, pools.unpaired_fraction,
                                                       pools.tags)


def make_split(dataset: Dataset, fraction: float, seed: int, policy: str = "overlap",
               pools: PoolSpec = PoolSpec()) -> PairingSplit:
    fraction = parse_fraction(fraction)
    if policy not in POLICIES:
        raise BenchError(f"unknown split policy '{policy}'; choose one of {', '.join(POLICIES)}")
    train_ids = list(dataset.train.image_ids)
    ordered = sorted(train_ids, key=lambda image_id: _order_key(seed, "paired", image_id))
    n_paired = max(1, int(round(len(ordered) * fraction / 100.0)))
    paired = ordered[:n_paired]
    if policy == "overlap":
        unpaired_images = list(train_ids)
        unpaired_caption_images = list(train_ids)
    else:
        rest = ordered[n_paired:]
        # A coin per image, independent of the fraction, keeps the pools nested too.
        gives_picture = {i: _order_key(seed, "side", i)[0] % 2 == 0 for i in rest}
        unpaired_images = [i for i in rest if gives_picture[i]]
        unpaired_caption_images = [i for i in rest if not gives_picture[i]]
    if pools.unpaired_fraction != 100:
        unpaired_images = _prefix(unpaired_images, seed, "unpaired-images", pools.unpaired_fraction)
        unpaired_caption_images = _prefix(unpaired_caption_images, seed, "unpaired-captions", pools.unpaired_fraction)
    for source in pools.extras:
        check_not_held_out(source, dataset)
    if len(set(pools.tags)) != len(pools.tags):
        raise BenchError(f"extra sources {list(pools.tags)}: give each source once")
    # Store lists in dataset order, so files diff well and read naturally.
    position = dataset.train.image_index
    by_position = lambda ids: sorted(ids, key=position.__getitem__)  # noqa: E731
    split = PairingSplit(
        dataset=dataset.name,
        policy=policy,
        fraction=fraction,
        seed=seed,
        dataset_ids_sha256=dataset.ids_sha256,
        paired_image_ids=by_position(paired),
        unpaired_image_ids=by_position(unpaired_images),
        unpaired_caption_image_ids=by_position(unpaired_caption_images),
        unpaired_fraction=float(pools.unpaired_fraction),
        extra_unpaired=[describe_extra(source, seed, pools.unpaired_fraction) for source in pools.extras],
    )
    check_no_leakage(split, dataset)
    return split


def check_no_leakage(split: PairingSplit, dataset: Dataset) -> None:
    """Every id in a training pool is a training image; none is a dev or test image."""
    train = set(dataset.train.image_ids)
    held_out = set(dataset.dev.image_ids) | set(dataset.test.image_ids)
    for field_name in ("paired_image_ids", "unpaired_image_ids", "unpaired_caption_image_ids"):
        ids = getattr(split, field_name)
        leaked = [i for i in ids if i in held_out]
        if leaked:
            raise BenchError(f"split leaks held-out images into {field_name}: {leaked[:3]} (dev/test must never train)")
        unknown = [i for i in ids if i not in train]
        if unknown:
            raise BenchError(f"split names images that are not in the training set in {field_name}: {unknown[:3]}")
        if len(set(ids)) != len(ids):
            raise BenchError(f"split lists an image twice in {field_name}")
    if split.policy == "disjoint":
        paired = set(split.paired_image_ids)
        pools = [set(split.unpaired_image_ids), set(split.unpaired_caption_image_ids)]
        if pools[0] & pools[1] or paired & (pools[0] | pools[1]):
            raise BenchError("a 'disjoint' split shares images between its paired set and unpaired pools")


def write_split(split: PairingSplit, splits_dir: str | Path) -> Path:
    path = Path(splits_dir) / split.dataset / split.filename
    atomic_write_text(path, split.to_json())
    return path


def make_command(dataset: str, fraction: float, seed: int, policy: str, pools: PoolSpec = PoolSpec()) -> str:
    """The `bench splits make` command that writes this cell's split file."""
    command = (f"bench splits make --dataset {dataset} --fractions {format_fraction(fraction)} --seeds {seed} "
               f"--policy {policy}")
    if pools.unpaired_fraction != 100:
        command += f" --unpaired-fractions {format_fraction(pools.unpaired_fraction)}"
    for source in pools.extras:
        command += f" --extra-unpaired-{source.modality} {source.spec}"
    return command


def load_split(dataset: Dataset, fraction: float, seed: int, policy: str = "overlap",
               splits_dir: str | Path | None = None, pools: PoolSpec = PoolSpec()) -> tuple[PairingSplit, Path]:
    """The committed split file for this cell, checked against the loaded data (and extra sources)
    and against the split its own parameters give, as ``bench splits verify`` checks it: a file whose
    paired ids are not the ones its fraction gives (another fraction's, trimmed, emptied) trains
    nothing and is a one-line :class:`BenchError` naming the file and the difference."""
    path = split_path(splits_dir or default_splits_dir(), dataset.name, policy, fraction, seed, pools)
    if not path.exists():
        raise BenchError(f"no split file {path}; make it with `{make_command(dataset.name, fraction, seed, policy, pools)}`")
    split = PairingSplit.from_file(path)
    check_parameters(split, path, dataset.name, fraction, seed, policy)
    if float(split.unpaired_fraction) != float(pools.unpaired_fraction):
        raise BenchError(f"split file {path} keeps {format_fraction(split.unpaired_fraction)} % of the unpaired "
                         f"pools, but it is loaded for {format_fraction(pools.unpaired_fraction)} % (renamed?)")
    split.check_extras(pools.extras, path)
    split.check_matches(dataset, path)
    _, differences = compare_with_recomputed(split, dataset, pools.extras)
    if differences:
        more = f" (and {len(differences) - 1} more difference(s))" if len(differences) > 1 else ""
        remake = make_command(dataset.name, fraction, seed, policy, pools)
        raise BenchError(f"split file {path} is not the split its own parameters give: {differences[0]}{more}; "
                         f"edited or copied? Recreate it with `{remake}`")
    return split, path


def check_parameters(split: PairingSplit, path: str | Path, dataset: str, fraction: float, seed: int,
                     policy: str) -> None:
    """Refuse a split file whose own dataset, policy, fraction or seed is not the cell's (e.g. a
    ``p50`` file copied under the ``p25`` name would train on twice the paired images and be
    recorded as 25 %)."""
    wanted = {"dataset": dataset, "policy": policy, "fraction": float(fraction), "seed": int(seed)}
    found = {"dataset": split.dataset, "policy": split.policy, "fraction": float(split.fraction), "seed": split.seed}
    differ = [name for name in wanted if wanted[name] != found[name]]
    if differ:
        shown = lambda name, value: f"{format_fraction(value)} %" if name == "fraction" else str(value)  # noqa: E731
        says = ", ".join(f"{name} {shown(name, found[name])}" for name in differ)
        needs = ", ".join(f"{name} {shown(name, wanted[name])}" for name in differ)
        raise BenchError(
            f"split file {path} says {says}, but it is loaded for {needs} (copied or renamed?); recreate it with "
            f"`bench splits make --dataset {dataset} --fractions {format_fraction(fraction)} --seeds {seed} "
            f"--policy {policy}`"
        )


def compare_with_recomputed(stored: PairingSplit, dataset: Dataset,
                            extras: tuple[ExtraSource, ...]) -> tuple[PairingSplit, list[str]]:
    """The split recomputed from ``stored``'s own parameters (dataset, policy, fraction, seed, pools,
    with the extra sources ``extras``), and how ``stored`` differs from it, one short reason per field.

    This is the check that a split file holds what its name and fields claim: a ``p25`` file holding
    the ``p50`` ids, a list trimmed to a few ids or emptied, a pool edited by hand all differ here.
    ``bench splits verify`` and :func:`load_split` (so every ``bench run`` and ``bench tune``) use it."""
    fresh = make_split(dataset, stored.fraction, stored.seed, stored.policy,
                       PoolSpec(stored.unpaired_fraction, tuple(extras)))
    differences = []
    for field_name in _ID_LISTS:
        have, want = getattr(stored, field_name), getattr(fresh, field_name)
        if have == want:
            continue
        if field_name == "paired_image_ids" and len(have) != len(want):
            differences.append(f"paired_image_ids holds {len(have)} images, but {format_fraction(stored.fraction)} % "
                               f"of this dataset's {len(dataset.train.image_ids)} training images is {len(want)}")
        else:
            differences.append(f"{field_name} differs from the recomputed split ({len(have)} images, "
                               f"recomputed {len(want)})")
    if stored.format_version != fresh.format_version:
        differences.append("format_version differs from the recomputed split")
    # The sources' recorded paths may differ (the same bytes given from another folder): not compared.
    without_path = lambda entries: [{k: v for k, v in e.items() if k != "path"} for e in entries]  # noqa: E731
    if without_path(stored.extra_unpaired) != without_path(fresh.extra_unpaired):
        differences.append("extra_unpaired differs from the recomputed split")
    return fresh, differences


def naming_file(path: Path, message: str) -> str:
    """``message`` as a line that names ``path`` (most BenchErrors about a file already do)."""
    return message if str(path) in message else f"{path}: {message}"


def verify_file(path: Path, dataset: Dataset) -> list[str]:
    """Every difference between a split file and the split recomputed from its parameters (extra
    sources are read again from the paths the file records), one line each, naming the file; a file
    that can't be read or checked at all gives one line saying why. Never raises a BenchError, so
    ``bench splits verify`` can go on to the next file."""
    from bench.data.extra import load_source

    try:
        stored = PairingSplit.from_file(path)
        stored.check_matches(dataset, path)
        extras = []
        for extra in stored.extra_unpaired:
            try:
                extras.append(load_source(f"{extra['kind']}:{extra['path']}", extra["modality"]))
            except (BenchError, KeyError) as error:
                return [f"{path}: its extra source {extra.get('tag')} can't be read again to check it ({error})"]
        fresh, differences = compare_with_recomputed(stored, dataset, tuple(extras))
    except BenchError as error:
        return [naming_file(path, str(error))]
    problems = [f"{path}: {difference}" for difference in differences]
    if not problems and path.read_text() != fresh.to_json():
        problems.append(f"{path}: the file's text differs from the recomputed split (formatting or counts)")
    if path.name != fresh.filename:
        problems.append(f"{path}: name should be {fresh.filename}")
    return problems


def subsets(dataset: Dataset, split: PairingSplit, pools: PoolSpec = PoolSpec()) -> tuple[PairedData, UnpairedData]:
    """The paired set and unpaired pools a split names, with the kept items of ``pools.extras`` added
    after the dataset's own (the split's checksums of them are checked by ``load_split``)."""
    train = dataset.train
    paired_rows = np.array([train.image_index[i] for i in split.paired_image_ids], dtype=np.int64)
    paired = train.subset(paired_rows, name="paired")
    unpaired_image_rows = np.array([train.image_index[i] for i in split.unpaired_image_ids], dtype=np.int64)
    caption_source = np.zeros(train.n_images, dtype=bool)
    caption_source[[train.image_index[i] for i in split.unpaired_caption_image_ids]] = True
    caption_rows = np.flatnonzero(caption_source[train.caption_to_image])
    image_ids = [train.image_ids[r] for r in unpaired_image_rows]
    features = [train.features[unpaired_image_rows].astype(np.float32, copy=False)]
    caption_ids = [train.caption_ids[r] for r in caption_rows]
    captions = [train.captions[r] for r in caption_rows]
    for source in pools.extras:
        rows = kept_extra_rows(source, split.seed, split.unpaired_fraction)
        if source.modality == "captions":
            caption_ids += [source.ids[r] for r in rows]
            captions += [source.captions[r] for r in rows]
        else:
            image_ids += [source.ids[r] for r in rows]
            features.append(source.features[rows])
    return (
        PairedData(paired.image_ids, paired.features, paired.caption_ids, paired.captions, paired.caption_to_image),
        UnpairedData(image_ids=image_ids, features=np.concatenate(features).reshape(-1, train.feature_dim),
                     caption_ids=caption_ids, captions=captions),
    )
