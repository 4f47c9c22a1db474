"""Replay simulation: curve bootstrap, the cluster replay and its summaries, `microsweep
simulate` (fast: Ray's scheduler objects without the Ray runtime), and the real Ray Tune
replay task (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import simulation as S
from analysis.synthetic import make_fake_run
from search.cli import main
from search.simulate import (
    RayRule,
    SimulateSettings,
    quote_for,
    replay_experiment,
    scheduler_settings,
    simulate,
    write_curves,
)
from search.simulate_fidelity import decisions, prediction, timed

RECORDED = Path(__file__).parents[1] / "bench" / "recorded" / "asha_vs_fifo"


def curves_of(values: list[list[float]], seconds: float = 1.0) -> S.Curves:
    val = tuple(np.asarray(v, float) for v in values)
    return S.Curves(
        val=val,
        epoch_s=tuple(np.full(len(v), seconds) for v in val),
        group=np.arange(len(val)),
        names=tuple(map(str, range(len(val)))),
        max_epochs=max(len(v) for v in val),
        skipped=0,
    )


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("sim") / "run", max_epochs=12, rungs=(2, 6))


def test_load_curves_keeps_completed_trials_with_epoch_seconds(fake_run):
    trials = pd.read_parquet(fake_run / "trials.parquet")
    curves = S.load_curves([fake_run])
    assert len(curves) == (trials.status == "completed").sum()
    assert curves.skipped == len(trials) - len(curves)
    assert all(np.allclose(s, 10.0) for s in curves.epoch_s)  # cumulative wall_s, 10 s/epoch
    assert curves.group.max() + 1 == 8  # 2 x 2 x 2 configurations, seeds share a group


def test_draw_trials_starts_with_the_recorded_curves_then_adds_seed_noise(fake_run):
    curves = S.load_curves([fake_run])
    drawn = S.draw_trials(curves, 400, rng=np.random.default_rng(0))
    assert len(drawn) == 400
    for i in range(len(curves)):
        np.testing.assert_array_equal(drawn.val[i], curves.val[i])
    new = range(len(curves), 400)
    assert all(drawn.val[i].min() >= 0 and drawn.val[i].max() <= 1 for i in new)
    lengths = {len(v) for v in curves.val}
    assert {len(drawn.val[i]) for i in new} <= lengths
    # new trials of one configuration vary about as much as the recorded seeds do
    best = pd.Series([drawn.val[i].max() for i in new], index=drawn.group[len(curves) :])
    spread = best.groupby(level=0).std().mean()
    noise = S.seed_noise(curves)
    assert noise > 0
    assert noise / 3 < spread < noise * 3


def test_single_seed_runs_draw_their_configurations_without_noise(tmp_path):
    run = make_fake_run(tmp_path / "run", seeds=(0,), stop_fraction=0.0, full_epochs=True)
    curves = S.load_curves([run])
    assert S.seed_noise(curves) == 0.0
    drawn = S.draw_trials(curves, 30, rng=np.random.default_rng(1))
    for i in range(len(curves), 30):
        g = drawn.group[i]
        np.testing.assert_allclose(
            drawn.val[i], curves.val[int(np.flatnonzero(curves.group == g)[0])]
        )


def test_fewer_trials_than_recorded_is_a_subset(fake_run):
    curves = S.load_curves([fake_run])
    drawn = S.draw_trials(curves, 5, rng=np.random.default_rng(0))
    recorded = {tuple(v) for v in curves.val}
    assert len(drawn) == 5 and all(tuple(v) in recorded for v in drawn.val)


def test_fifo_on_two_gpus_counts_wall_time_and_utilisation():
    trials = curves_of([[0.1] * 4, [0.2] * 4, [0.3] * 4])
    sched = scheduler_settings("fifo", 1, 2, 4)
    out = S.run_cluster(trials, [0, 1, 2], gpus=2, rule=RayRule("fifo", sched), milestones=[],
                        max_epochs=4)  # fmt: skip
    assert (out.trial_epochs, out.wall_s, out.busy_s, out.best) == (12, 8.0, 12.0, 0.3)
    assert out.utilisation == pytest.approx(12 / 16)


def test_rays_asha_scheduler_decides_the_replay_by_hand_computed_cutoffs():
    # one GPU: trials reach rungs in order. Rung 1 has {0.5, 0.6} when trial 2 (0.4) arrives:
    # cutoff = 50th percentile = 0.55 > 0.4, so it stops after epoch 1; the others run 4.
    trials = curves_of([[0.5] * 4, [0.6] * 4, [0.4] * 4, [0.7] * 4])
    sched = scheduler_settings("asha", 1, 2, 4)
    out = S.run_cluster(trials, [0, 1, 2, 3], gpus=1, rule=RayRule("asha", sched),
                        milestones=sched.rungs(), max_epochs=4)  # fmt: skip
    assert out.epochs.tolist() == [4, 4, 1, 4]
    assert out.stopped.tolist() == [False, False, True, False]
    reverse = S.run_cluster(trials, [3, 2, 1, 0], gpus=1, rule=RayRule("asha", sched),
                            milestones=sched.rungs(), max_epochs=4)  # fmt: skip
    assert reverse.epochs.tolist() == [1, 2, 1, 4]  # the order decides, as in Ray


def test_ratios_summary_and_recommendation():
    rows = pd.DataFrame(
        [
            ("fifo", "fifo", None, None, 0, 0.80, 100), ("fifo", "fifo", None, None, 1, 0.80, 100),
            ("a", "asha", 1, 2, 0, 0.80, 20), ("a", "asha", 1, 2, 1, 0.72, 20),
            ("b", "asha", 2, 3, 0, 0.80, 40), ("b", "asha", 2, 3, 1, 0.79, 40),
        ],
        columns=[S.SETTING, S.SCHEDULER, S.GRACE, S.ETA, S.ORDER, S.BEST, S.TRIAL_EPOCHS],
    )  # fmt: skip
    rows[S.PATH], rows[S.WALL], rows[S.UTIL] = "event", 3600.0, 0.5
    summary = S.summarise(S.with_ratios(rows)).set_index(S.SETTING)
    assert summary.loc["a", "best_ratio_mean"] == pytest.approx(0.95)
    assert summary.loc["a", "best_ratio_worst5"] == pytest.approx(0.9 + 0.05 * 0.1)
    assert summary.loc["b", "epochs_ratio"] == pytest.approx(0.4)
    rec = S.recommend(summary.reset_index())
    assert (rec[S.GRACE], rec[S.ETA]) == (2, 3)  # "a" is cheaper but loses 10 % in one order
    assert "keeps 0.99 of the best" in S.quote_line(summary.reset_index(), grace=2, eta=3)


def test_rank_correlation_of_a_perfectly_ordered_rung_is_one():
    trials = curves_of([[0.1, 0.2, 0.3], [0.2, 0.3, 0.5], [0.3, 0.4, 0.6], [0.0, 0.1, 0.2]])
    assert S.rank_correlation(trials, 1) == pytest.approx(1.0)
    assert np.isnan(S.rank_correlation(trials, 4))


def test_simulate_command_writes_files_and_the_dry_run_quote(fake_run, capsys):
    assert quote_for(fake_run) is None
    rc = main(["simulate", str(fake_run), "--trials", "60", "--gpus", "4", "--orders", "3",
               "--grace", "1,2", "--eta", "2,3"])  # fmt: skip
    assert rc == 0
    out = fake_run / "simulation"
    rows = pd.read_parquet(out / S.SIMULATION_FILE)
    assert len(rows) == 5 * 3 and set(rows[S.PATH]) == {"event"}
    assert (rows[rows[S.SCHEDULER] == "fifo"][S.EPOCHS_RATIO] == 1).all()
    assert (out / "simulation.png").read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "Recommendation:" in text and "| asha g2 e3 | event | 3 |" in text
    assert quote_for(fake_run, grace=2, eta=3).startswith(
        "simulated on your last run: ASHA (grace 2, eta 3) keeps"
    )


def test_format_plan_quotes_the_simulation_of_the_run_folder(fake_run, tmp_path):
    from search.plan import format_plan, make_plan

    main(["simulate", str(fake_run), "--trials", "20", "--orders", "2", "--grace", "2"])
    write_curves(tmp_path / "curves.parquet", S.load_curves([fake_run]), 10)
    sched = scheduler_settings("asha", 2, 3, 12)
    exp = replay_experiment(tmp_path, [0, 1], sched, SimulateSettings(runs=()))
    exp = type(exp)(**{**exp.__dict__, "storage": type(exp.storage).parse(str(fake_run.parent)),
                       "name": fake_run.name})  # fmt: skip
    text = format_plan(make_plan(exp))
    assert "simulated on your last run: ASHA (grace 2, eta 3) keeps" in text


@pytest.mark.parametrize(
    "args, message",
    [(["--gpus", "0"], "--gpus must be >= 1"), (["--eta", "1"], "--eta >= 2")],
)
def test_bad_settings_are_one_line(fake_run, capsys, args, message):
    assert main(["simulate", str(fake_run), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_run_without_completed_trials_is_one_line(tmp_path, capsys):
    run = make_fake_run(tmp_path / "run", stop_fraction=0.97, diverge_fraction=0.03,
                        error_fraction=0.0)  # fmt: skip
    assert main(["simulate", str(run)]) == 2
    assert "needs at least 2 full learning curves" in capsys.readouterr().err


@pytest.mark.slow
def test_ray_tune_replay_makes_the_same_decisions_as_the_event_replay(
    fake_run, tmp_path, fresh_ray
):
    """One fake GPU: Ray's ASHA sees the trials in launch order, so the replayed sweep must
    train exactly the epochs the event replay (the same scheduler object type) predicts."""
    settings = SimulateSettings(runs=(str(fake_run),), trials=12, gpus=1, graces=(2,), etas=(3,),
                                orders=1, ray=True, speedup=500, checkpoint_mb=0.001,
                                out=str(tmp_path / "sim"))  # fmt: skip
    result = simulate(settings, printer=lambda line: None)
    assert result.ray["trial_epochs"] == result.ray["event_trial_epochs"]
    assert (tmp_path / "sim" / "simulation.md").read_text().count("Ray's overhead per trial") == 1


@pytest.mark.slow
def test_200_trials_on_16_fake_gpus_through_ray_tune(fake_run, tmp_path, fresh_ray):
    settings = SimulateSettings(runs=(str(fake_run),), trials=200, gpus=16, graces=(1,),
                                etas=(3,), orders=3, ray=True, speedup=2000, checkpoint_mb=0.001,
                                out=str(tmp_path / "sim"))  # fmt: skip
    result = simulate(settings, printer=lambda line: None)
    ray_row = result.rows[result.rows[S.PATH] == "ray"].iloc[0]
    assert ray_row[S.STOPPED] > 50  # ASHA stopped trials for real
    ratio = result.ray["trial_epochs"] / result.ray["event_trial_epochs"]
    assert 0.85 < ratio < 1.15, ratio  # asynchronous arrival order differs a little


@pytest.mark.slow
def test_the_recorded_18_configuration_benchmark_replays_within_10_percent(tmp_path, fresh_ray):
    """bench/asha_vs_fifo.py's recorded FIFO curves (18 configurations, 18 epochs, grace 2,
    eta 3) under the real Ray Tune replay task: Ray's trial-epochs and the event replay's agree
    within 10 %. One trial at a time: with two, who reaches a rung first depends on real timing
    in the Ray replay (see the fidelity tests below for two at once)."""
    settings = SimulateSettings(runs=(str(RECORDED / "bench-fifo"),), gpus=1, graces=(2,),
                                etas=(3,), orders=4, ray=True, speedup=200, checkpoint_mb=0.001,
                                out=str(tmp_path / "sim"))  # fmt: skip
    result = simulate(settings, printer=lambda line: None)
    ray, event = result.ray["trial_epochs"], result.ray["event_trial_epochs"]
    assert abs(ray - event) <= 0.1 * event, (ray, event)  # ratios to FIFO's 18 x 18 = 324


def test_rays_asha_rule_in_rays_arrival_order_decides_every_recorded_trial_alike():
    """bench/asha_vs_fifo.py's real ASHA run (18 configurations, 18 epochs, grace 2, eta 3, two
    trials at once), its results fed in the order Ray's driver took them (arrivals.parquet) to
    Ray's ASHAScheduler object as the replay asks it: every trial stops where it stopped."""
    check = decisions(RECORDED / "bench-asha")
    assert check.trials == 18 and check.mismatched == 0
    assert check.replayed == check.measured < 18 * 18
    other = decisions(RECORDED / "bench-asha", settings=scheduler_settings("asha", 2, 2, 18))
    assert other.mismatched > 0  # another rule in the same order decides otherwise


def test_the_event_replay_on_rays_clock_reproduces_the_recorded_arrival_order():
    """Two trials at once: the event replay of the recorded ASHA run, timed by when Ray's driver
    took each result (arrivals.parquet), puts every trial at Ray's position at each rung and
    trains the measured trial-epochs (the simulated GPU slots behave as Ray's)."""
    check = timed(RECORDED / "bench-asha", slots=2, start_s=0.0, clock="driver")
    assert check.beyond == 0 and check.replayed == check.measured
    assert check.same_order == {2: 1.0, 6: 1.0}
    one = timed(RECORDED / "bench-asha", slots=1, start_s=0.0, clock="driver")
    assert one.same_order[6] < 1.0  # one slot: another order, so the check can fail


def test_the_recorded_benchmark_ratio_is_reproduced_from_its_fifo_curves():
    """Issue 15: the recorded FIFO run's curves (and epoch times), ASHA with the benchmark's
    settings, two trials at once, in the real launch order: the measured ASHA/FIFO trial-epochs
    ratio within 10 %; and the measured run is one of the orders the simulation spans."""
    check = prediction(RECORDED / "bench-asha", RECORDED / "bench-fifo", slots=2, orders=100)
    measured, simulated = check.ratio(check.measured), check.ratio(check.launch)
    assert check.fifo == 18 * 18
    assert abs(simulated - measured) <= 0.1 * measured, (simulated, measured)
    lo, hi = np.quantile(check.orders, [0.05, 0.95])
    assert lo <= check.measured <= hi and lo < hi  # other orders give other ratios


def test_checkpoints_have_the_recorded_models_size(fake_run, tmp_path):
    from search.simulate import checkpoint_bytes

    assert checkpoint_bytes([str(fake_run)], 0.5) == 500_000
    size = checkpoint_bytes([str(fake_run)], None)  # FPN or Unet on resnet18/50, fp32
    assert 30e6 < size < 150e6
    other = make_fake_run(tmp_path / "run", factors={"lr": [1e-3, 3e-3]})
    assert checkpoint_bytes([str(other)], None) == 1_000_000  # no model named: 1 MB


@pytest.mark.parametrize("kind", ["replay", "tests.sweep_helpers:toy_trainable"])
def test_a_replay_or_custom_worker_imports_neither_torch_nor_smp(kind):
    """Ray's worker for a replayed (or custom ``module:function``) trial asks for its task by
    name: only its own module is imported (the segmentation stack cost each worker ~4 s of CPU
    at start)."""
    import subprocess
    import sys

    from trainables.feasibility import check_pairs

    check_pairs([("FPN", "resnet18")])  # as the driver's plan does: the answer is on disk
    heavy = "('torch', 'segmentation_models_pytorch', 'albumentations')"
    code = (f"import sys; from trainables.task import get_task; t = get_task({kind!r}); "
            "t.trainable(); assert t.check({'decoder': 'FPN', 'seed': 0}) is None; "
            f"print(sorted(m for m in {heavy} if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
