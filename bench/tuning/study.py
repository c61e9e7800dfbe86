"""What a study is: its spec, the tuned file it writes, and the data its trials may read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.data.types import Split
from bench.models import PairedData, UnpairedData
from bench.splits import format_fraction

TUNED_PROFILE = "tuned"
DEFAULT_TUNED_DIR = Path("reports") / "tuning"
STUDIES_FILE = "studies.db"


@dataclass(frozen=True)
class StudySpec:
    dataset: str
    model: str
    text_encoder: str | None
    fraction: float
    base_profile: str  # the profile a trial's settings start from
    trials: int
    update_cap: int
    seed: int = 0  # of the split file and of the sampler
    revision: int = 0  # the model's behaviour revision: a raised one starts a new study, not old trials

    @property
    def name(self) -> str:
        revision = f"_r{self.revision}" if self.revision else ""
        return f"{self.dataset}_{self.tuned_path(Path()).stem}{revision}"

    def tuned_path(self, tuned_dir: Path) -> Path:
        return tuned_file(tuned_dir, self.dataset, self.model, self.text_encoder, self.fraction)


def tuned_file(tuned_dir: Path, dataset: str, model: str, text_encoder: str | None, fraction: float) -> Path:
    text = f"_{text_encoder}" if text_encoder else ""
    return Path(tuned_dir) / dataset / f"{model}{text}_p{format_fraction(fraction)}.json"


@dataclass(frozen=True, eq=False)
class TuningData:
    """What a trial may read: the training subsets of one split and the dev split. No test split."""

    paired: PairedData
    unpaired: UnpairedData
    dev: Split
    split_file: str
    split_sha256: str
