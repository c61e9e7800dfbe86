"""One trial: the config it trains with, the values it samples, and its training (the objective)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from bench.models.config import config_to_dict
from bench.models import FitContext
from bench.models.registry import ModelSpec
from bench.models.search_space import UPDATES
from bench.tuning.study import StudySpec, TuningData


def trial_config(spec: ModelSpec, study: StudySpec, params: dict[str, Any], data: TuningData) -> tuple[Any, int | None]:
    """The config a trial trains with and the updates it is allowed: the base profile with the
    sampled settings, ``updates`` turned into epochs (and the lr drop at the profile's share of them)."""
    settings = {k: str(v) for k, v in params.items() if k != UPDATES}
    if study.text_encoder:
        settings["text_encoder"] = study.text_encoder
    config = spec.config_class.for_profile(study.base_profile, settings)
    if UPDATES not in params:
        return config, None
    # the budget in whole updates (flooring first gives the same epochs as flooring after); a
    # pre-training stage is shortened only when it would not fit under the cap with one epoch
    config = dataclasses.replace(config, updates=int(params[UPDATES] * study.update_cap))
    model = spec.factory(config)
    config = model.settle_schedule(data.paired, data.unpaired, room=study.update_cap)
    fixed, per_epoch = model.schedule(data.paired, data.unpaired)
    return config, fixed + per_epoch * config.epochs


class _Pruned(Exception):
    pass


def sample_params(trial: Any, spec: ModelSpec) -> dict[str, Any]:
    """The trial's values of the model's search space; Optuna samples each once, later calls read them back."""
    return {name: dist.suggest(trial, name) for name, dist in spec.config_class.SEARCH_SPACE.items()}


def run_trial(trial: Any, spec: ModelSpec, study: StudySpec, data: TuningData, workdir: Path, device) -> float:
    """Train one trial on the training subsets, select on dev, return the best dev rsum."""
    import optuna

    from bench.models.training import seed_everything

    params = sample_params(trial, spec)  # sampled when the trial was claimed: the same values again
    config, updates = trial_config(spec, study, params, data)
    trial.set_user_attr("config", config_to_dict(config))
    trial.set_user_attr("updates", updates)
    reported = [0]

    def progress(**fields: Any) -> None:
        if "val_rsum" in fields and "epoch" in fields:  # one dev rsum per epoch (mine's stage 1 reports no rsum)
            reported[0] += 1
            trial.report(float(fields["val_rsum"]), step=reported[0])
            if trial.should_prune():
                raise _Pruned()

    workdir.mkdir(parents=True, exist_ok=True)
    seed_everything(study.seed)
    model = spec.factory(config)
    context = FitContext(validation=data.dev, workdir=workdir, device=device, seed=study.seed, progress=progress)
    try:
        fit = model.fit(data.paired, data.unpaired, context)
    except _Pruned:
        raise optuna.TrialPruned() from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    trial.set_user_attr("updates", fit.updates if fit.updates is not None else updates)
    trial.set_user_attr("best_epoch", fit.best_epoch)
    if not fit.validation_curve:  # a closed-form model: its one dev evaluation
        from bench.metrics import evaluate_protocol

        dev = data.dev
        return evaluate_protocol(model.embed_images(dev.features), model.embed_captions(dev.captions),
                                 dev.caption_to_image, "full").to_dict()["rsum"]
    return max(point["val_rsum"] for point in fit.validation_curve)
