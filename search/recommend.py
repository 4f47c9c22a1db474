"""``microsweep recommend``: search, confirm, rank, export — the answer for a new material.

Example::

    rec, run_dir = recommend("exp.yaml", top=3, seeds=3)   # or an existing run folder
    rec, run_dir = recommend("exp.yaml", top=3, folds=True)  # across the k-fold split files
    rec.to_json()["winner"]                                 # also RUN/recommendation.json

1. **Search**: the experiment's sweep (ASHA), or the sweep already in a run folder (an
   interrupted one is resumed; finished trials are never run again).
2. **Confirm**: the ``top`` configurations by best val IoU are trained again from scratch to
   the full budget (FIFO: no early stopping, the trainable's own patience schedule) with
   ``seeds`` new seeds each, as a second Ray Tune stage in ``RUN/confirm`` whose trials are
   added to ``RUN/trials.parquet`` with ``stage = confirm``. With ``folds`` (a flat dataset
   with k-fold split files, :mod:`search.folds`) each is trained once per fold instead, with
   one seed new to the search for every fold, one stage per fold in ``RUN/confirm/fold{i}``
   (folds one after another; a fold's trials run in parallel), rows with a ``fold`` column.
3. **Rank** (:mod:`analysis.recommend`): mean ± std, CI, P(best), cost and a verdict, written
   to ``RUN/recommendation.json``.
4. **Export**: the winner's best confirm trial (or all its confirm trials with ``ensemble``)
   to ``RUN/model/``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from analysis import results as R
from core.errors import UserError
from core.storage import Location
from search.experiment import Experiment, SchedulerSettings, Search, load_experiment
from search.folds import check_confirm_kind, check_fold_set, find_folds, record_fold_set
from search.launch import load_saved_experiment, run_sweep
from search.progress import Printer, stderr_line
from search.resume import TUNER_FILE
from spaces.dimensions import Fixed

MODEL_DIR = "model"


def recommend(
    target: str | Path,
    *,
    top: int = 3,
    seeds: int | None = None,
    folds: int | bool | None = None,
    ensemble: bool = False,
    address: str | None = None,
    overrides: list[str] = (),
    printer: Printer = stderr_line,
) -> tuple[Any, Location]:
    """Run the four steps on an experiment file or a run folder; returns the
    :class:`~analysis.recommend.Recommendation` and the run folder.

    ``seeds`` new seeds per candidate (default 3), or ``folds``: ``True`` for every fold of
    the dataset's k-fold split files, ``N`` for the first N; not both."""
    from analysis.recommend import candidates, rank, write_recommendation

    if seeds is not None and folds not in (None, False):
        raise UserError("give --seeds or --folds, not both (a fold trial has one fold and seed)")
    seeds = 3 if seeds is None else seeds
    if top < 1 or seeds < 1:
        raise UserError(f"--top and --seeds must be >= 1, but got {top} and {seeds}")
    exp = _experiment(target, overrides)
    fold_set = None
    if folds not in (None, False):  # every refusal before Ray starts
        fold_set = find_folds(exp, count=None if folds is True else int(folds))
        check_fold_set(exp.run_dir, fold_set)
    if (exp.run_dir / R.TRIALS_FILE).is_file():
        check_confirm_kind(_trials(exp.run_dir), folds=fold_set is not None)
    printer(f"recommend: search stage in {exp.run_dir}")
    run_sweep(exp, address=address, resume=(exp.ray_dir / TUNER_FILE).exists())
    factors = _factors(exp)
    configs = [c.config for c in candidates(_trials(exp.run_dir), factors, top=top)]
    if fold_set is not None:
        record_fold_set(exp.run_dir, fold_set)
    for stage in _confirm_stages(exp, configs, seeds=seeds, fold_set=fold_set, printer=printer):
        if stage.fold is not None:
            printer(f"recommend: fold {stage.fold} ({stage.data.split_file.name})")
        resume = (stage.ray_dir / TUNER_FILE).exists()
        run_sweep(stage, address=address, resume=resume, require_trained=False)
    rec = rank(_trials(exp.run_dir), factors, seed=exp.search.seed)
    write_recommendation(exp.run_dir, rec)
    _export(exp, rec, ensemble=ensemble, printer=printer)
    return rec, exp.run_dir


def _experiment(target: str | Path, overrides: list[str]) -> Experiment:
    path = Path(target)
    if path.is_file():
        return load_experiment(path, overrides=list(overrides))
    if overrides:
        raise UserError("--set applies to an experiment file, not to a run folder")
    return load_saved_experiment(str(target))


def _factors(exp: Experiment) -> list[str]:
    return [k for k, d in exp.space.items() if not isinstance(d, Fixed)] or list(exp.space)


def _trials(run_dir: Location) -> Any:
    from analysis.load import load_runs

    return load_runs([run_dir])


def confirm_experiment(exp: Experiment, configs: list[dict], *, seeds: int) -> Experiment:
    """The confirm stage: ``configs`` x ``seeds`` seeds new to the search, full budget, FIFO."""
    first = max(exp.seeds) + 1
    points = tuple({k: v for k, v in c.items() if k in exp.space} for c in configs)
    return dataclasses.replace(
        exp,
        stage=R.CONFIRM,
        repeats=seeds,
        search=Search(algorithm="listed", seed=first, points=points),
        scheduler=SchedulerSettings("fifo", exp.scheduler.max_epochs),
    )


def _confirm_stages(
    exp: Experiment, configs: list[dict], *, seeds: int, fold_set: Any, printer: Printer
) -> list[Experiment]:
    """One confirm stage over ``seeds`` new seeds, or one per fold of ``fold_set``."""
    if fold_set is None:
        printer(f"recommend: confirming {len(configs)} configuration(s) x {seeds} new seed(s)")
        return [confirm_experiment(exp, configs, seeds=seeds)]
    printer(
        f"recommend: confirming {len(configs)} configuration(s) x {len(fold_set.files)} "
        f"fold(s) of {fold_set.name}"
    )
    return fold_experiments(exp, configs, fold_set.files)


def fold_experiments(
    exp: Experiment, configs: list[dict], files: dict[int, Path]
) -> list[Experiment]:
    """One confirm stage per fold: ``configs`` once each on that fold's split file, with the
    same seed (new to the search) in every fold, so a fold's pair differs in config only."""
    confirm = confirm_experiment(exp, configs, seeds=1)
    label = _dataset_label(exp)  # one dataset label for every stage, not the fold file's name
    return [
        dataclasses.replace(
            confirm,
            fold=fold,
            data=dataclasses.replace(exp.data, split_file=Path(path).resolve(), name=label),
        )
        for fold, path in files.items()
    ]


def _dataset_label(exp: Experiment) -> str:
    """The search stage's dataset label (run.json), else the one its data would get."""
    from trainables.data.layout import discover

    run_file = exp.run_dir / R.RUN_FILE
    label = json.loads(run_file.read_bytes()).get(R.DATASET) if run_file.is_file() else None
    return label or exp.data.name or discover(exp.data.root, exp.data.split_file).label


def _export(exp: Experiment, rec: Any, *, ensemble: bool, printer: Printer) -> Path:
    from search.export import export_model

    winner = rec.candidates[rec.winner]
    members = list(winner.trials) if ensemble else [winner.best_trial]
    # a package is a local folder: beside the run folder on disks, here for object stores
    out = Path(f"{exp.name}-{MODEL_DIR}") if exp.run_dir.is_uri else Path(exp.run_dir) / MODEL_DIR
    export_model(exp.run_dir, trials=members, out=out, ensemble=ensemble, overwrite=True)
    printer(f"recommend: {rec.verdict}")
    printer(f"recommend: model exported to {out}")
    return out
