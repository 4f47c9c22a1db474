"""``search.max_concurrent`` limits every strategy (Ray ignores ``max_concurrent_trials`` for a
grid's search generator), and ``arrivals.parquet`` records the order Ray's ASHA saw results."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import fidelity as F
from analysis import simulation as S
from search.experiment import parse_experiment
from search.plan import make_plan
from search.simulate import RayRule, scheduler_settings, write_curves
from search.tuner import tune_config


def curves(values: list[list[float]]) -> S.Curves:
    val = tuple(np.asarray(v, float) for v in values)
    return S.Curves(val=val, epoch_s=tuple(np.full(len(v), 1.0) for v in val),
                    group=np.arange(len(val)), names=tuple(map(str, range(len(val)))),
                    max_epochs=max(map(len, val)), skipped=0)  # fmt: skip


def replay_exp(tmp_path, *, algorithm: str, n: int, max_concurrent: int | None, **extra):
    write_curves(tmp_path / "curves.parquet", curves([[0.1 * (i + 1)] * 4 for i in range(n)]), 10)
    search: dict = {"algorithm": algorithm, "seed": 0}
    if algorithm != "grid":
        search["num_samples"] = n
    if max_concurrent is not None:
        search["max_concurrent"] = max_concurrent
    raw = {"name": "conc", "kind": "replay", "data": {"curves": str(tmp_path / "curves.parquet")},
           "space": {"curve": list(range(n))}, "search": search,
           "train": {"speedup": 20}, "resources": {"cpu": 1, "gpu": 1},
           "fault": {"max_failures": 0}, "storage": str(tmp_path / "runs"), **extra}  # fmt: skip
    return parse_experiment(raw, base_dir=tmp_path)


@pytest.mark.parametrize("algorithm", ["grid", "random", "optuna"])
def test_max_concurrent_reaches_ray_for_every_strategy(tmp_path, algorithm):
    exp = replay_exp(tmp_path, algorithm=algorithm, n=4, max_concurrent=2)
    cfg = tune_config(exp, make_plan(exp))
    if algorithm == "optuna":  # a Searcher: Ray wraps it in a ConcurrencyLimiter
        assert cfg.max_concurrent_trials == 2
    else:  # a search generator: Ray would ignore max_concurrent_trials, with a warning
        assert cfg.search_alg.max_concurrent == 2 and not cfg.max_concurrent_trials
    unlimited = tune_config(replay_exp(tmp_path, algorithm=algorithm, n=4, max_concurrent=None),
                            make_plan(exp))  # fmt: skip
    assert not unlimited.max_concurrent_trials
    assert getattr(unlimited.search_alg, "max_concurrent", 0) == 0


@pytest.mark.slow
def test_max_concurrent_one_runs_a_grid_one_trial_at_a_time_and_logs_arrivals(tmp_path, fresh_ray):
    """3 fake GPUs, `max_concurrent: 1`: Ray must start each trial after the previous ended
    (before the fix, the grid ran 3 at once). The arrival log then replays Ray's ASHA exactly."""
    from search.arrivals import ArrivalLog
    from search.launch import run_sweep, start_ray

    sched = {"name": "asha", "max_epochs": 4, "grace_epochs": 1, "reduction_factor": 2}
    exp = replay_exp(tmp_path, algorithm="grid", n=5, max_concurrent=1, scheduler=sched)
    start_ray(None, num_cpus=3, num_gpus=3)
    run_sweep(exp, printer=lambda line: None, callbacks=[ArrivalLog(str(exp.run_dir))])
    arrivals = F.load_arrivals(exp.run_dir)
    events = arrivals[S.EVENT].tolist()
    assert events.count(S.START) == 5 and events.count(S.COMPLETE) == 5
    running = np.cumsum([(e == S.START) - (e == S.COMPLETE) for e in events])
    assert running.max() == 1  # one trial at a time
    decided = F.replay_arrivals(arrivals, RayRule("asha", scheduler_settings("asha", 1, 2, 4)),
                                max_epochs=4)  # fmt: skip
    assert (decided["predicted_epochs"] == decided["epochs"]).all()
    assert (decided["epochs"] < 4).any()  # ASHA stopped some: the check decided something
