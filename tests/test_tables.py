"""Every number of the aggregation and paired statistics, on hand-made trial tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import results as R
from analysis.load import RUN
from analysis.stats import bootstrap_ci, pair_trials, paired_by, paired_comparison
from analysis.tables import (
    SOURCE,
    SOURCE_RUNG,
    UNSET,
    aggregate,
    compare_top,
    error_reduction,
    format_cell,
    format_table,
    missing_repeats,
    status_counts,
    summarize,
    top_models,
)
from core.errors import ReportError


def trials_table(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (dataset, init, decoder, seed, status, val %, test %) -> a trials table."""
    cols = [R.DATASET, "init", "decoder", R.SEED, R.STATUS, R.VAL_IOU, R.TEST_IOU]
    df = pd.DataFrame(rows, columns=cols)
    df[R.VAL_IOU] = df[R.VAL_IOU] / 100
    df[R.TEST_IOU] = df[R.TEST_IOU] / 100
    df.insert(0, RUN, 0)
    df.insert(1, R.TRIAL, [f"t{i:02d}" for i in range(len(df))])
    df[R.EXPERIMENT] = "exp"
    return df


NAN = math.nan
C, S, D, E = R.COMPLETED, R.STOPPED, R.DIVERGED, R.ERRORED
ROWS = [
    ("Super-1", "imagenet", "Unet", 0, C, 80.0, 90.0),
    ("Super-1", "imagenet", "Unet", 1, C, 85.0, 92.0),
    ("Super-1", "imagenet", "Unet", 2, C, 70.0, 97.0),
    ("Super-1", "micronet", "Unet", 0, C, 88.0, 95.0),
    ("Super-1", "micronet", "Unet", 1, C, 90.0, 93.0),
    ("Super-1", "micronet", "Unet", 2, S, 60.0, NAN),
    ("EBC-1", "imagenet", "Unet", 0, C, 60.0, 61.0),
    ("EBC-1", "micronet", "Unet", 0, D, NAN, NAN),
    ("EBC-1", "none", "Unet", 0, E, NAN, NAN),
]


@pytest.fixture
def trials() -> pd.DataFrame:
    return trials_table(ROWS)


def cell(long: pd.DataFrame, init: str, dataset: str) -> pd.Series:
    hit = long[(long["init"] == init) & (long[R.DATASET] == dataset)]
    assert len(hit) == 1
    return hit.iloc[0]


def test_summarize_gives_mean_sample_std_and_n():
    c = summarize([90.0, 92.0, 97.0, math.nan])
    assert c.n == 3
    assert c.mean == pytest.approx(93.0)
    assert c.std == pytest.approx(math.sqrt(13.0))  # (9 + 1 + 16) / (3 - 1)
    assert str(c) == "93.0±3.6"
    one = summarize([61.0])
    assert (one.n, one.mean, str(one)) == (1, 61.0, "61.0") and math.isnan(one.std)
    assert summarize([]).n == 0 and str(summarize([])) == ""


def test_format_cell_rounds_to_one_decimal():
    assert format_cell(93.649, 8.75, 5) == "93.6±8.8"
    assert format_cell(93.6, math.nan, 1) == "93.6"
    assert format_cell(math.nan, math.nan, 0) == ""


def test_aggregate_uses_completed_test_iou_only(trials):
    long = aggregate(trials, ["init"], across=R.DATASET)
    im = cell(long, "imagenet", "Super-1")
    assert (im["n"], im["mean"]) == (3, pytest.approx(93.0))
    assert im["std"] == pytest.approx(math.sqrt(13.0))
    mn = cell(long, "micronet", "Super-1")  # the stopped trial stays out
    assert (mn["n"], mn["mean"]) == (2, pytest.approx(94.0))
    assert mn["std"] == pytest.approx(math.sqrt(2.0))
    single = cell(long, "imagenet", "EBC-1")
    assert single["n"] == 1 and math.isnan(single["std"])


def test_aggregate_keeps_empty_cells_for_levels_without_completed_trials(trials):
    long = aggregate(trials, "init", across=R.DATASET)
    assert len(long) == 3 * 2  # every level × every dataset
    for init, dataset in [("micronet", "EBC-1"), ("none", "EBC-1"), ("none", "Super-1")]:
        row = cell(long, init, dataset)
        assert row["n"] == 0 and math.isnan(row["mean"])
    wide = format_table(long, ["init"], across=R.DATASET)
    assert list(wide.columns) == ["EBC-1", "Super-1"]
    assert list(wide.index) == ["imagenet", "micronet", "none"]
    assert wide.loc["imagenet", "Super-1"] == "93.0±3.6 (n=3)"
    assert wide.loc["imagenet", "EBC-1"] == "61.0 (n=1)"
    assert wide.loc["none", "Super-1"] == ""


def test_include_stopped_uses_val_iou_at_last_epoch(trials):
    epochs = pd.DataFrame(
        {RUN: 0, R.TRIAL: ["t05", "t05", "t05"], R.EPOCH: [1, 3, 2], R.VAL_IOU: [0.5, 0.71, 0.6]}
    )
    long = aggregate(trials, "init", epochs=epochs, include_stopped=True)
    mn = cell(long, "micronet", "Super-1")
    assert mn["n"] == 3
    assert mn["mean"] == pytest.approx((95.0 + 93.0 + 71.0) / 3)  # epoch 3 is the last
    from analysis.tables import metric_values

    vals = metric_values(trials, epochs, include_stopped=True)
    assert vals.loc[vals[R.TRIAL] == "t05", SOURCE].item() == SOURCE_RUNG


def test_crossed_factors_make_one_row_per_combination(trials):
    long = aggregate(trials, ["init", "decoder"])
    wide = format_table(long, ["init", "decoder"])
    assert list(wide.index) == ["imagenet × Unet", "micronet × Unet", "none × Unet"]


def test_status_counts_per_level(trials):
    counts = status_counts(trials, "init")
    assert counts.loc["imagenet", C] == 4
    assert counts.loc["micronet"].to_dict() == {
        C: 2, S: 1, D: 1, E: 0, R.INFEASIBLE: 0, "total": 4
    }  # fmt: skip
    assert counts.loc["none", E] == 1 and counts.loc["none", "total"] == 1


def test_missing_factor_values_show_as_unset(trials):
    trials.loc[trials[R.TRIAL] == "t06", "decoder"] = None
    counts = status_counts(trials, "decoder")
    assert counts.loc[UNSET, "total"] == 1


def test_unknown_factor_names_the_choices(trials):
    with pytest.raises(ReportError, match=r"unknown factor 'encoder'; choose from: decoder, init"):
        aggregate(trials, "encoder")


def test_error_reduction_as_in_the_paper():
    assert round(error_reduction(74.8, 93.0), 1) == 72.2  # Super-3, ImageNet vs MicroNet
    assert round(error_reduction(60.2, 65.9), 1) == 14.3  # EBC-3
    assert math.isnan(error_reduction(100.0, 90.0))


def test_top_models_pick_best_val_and_report_its_test(trials):
    top = top_models(trials, "init").set_index(["init", R.DATASET])
    assert top.loc[("imagenet", "Super-1"), R.TRIAL] == "t01"  # val 85 beats 80 and 70
    assert top.loc[("imagenet", "Super-1"), R.TEST_IOU] == pytest.approx(92.0)
    assert top.loc[("micronet", "Super-1"), R.TEST_IOU] == pytest.approx(93.0)
    assert ("micronet", "EBC-1") not in top.index  # diverged only


def test_compare_top_gives_error_reduction_per_dataset(trials):
    out = compare_top(trials, "init", "imagenet", "micronet").set_index(R.DATASET)
    assert out.loc["Super-1", "top imagenet"] == pytest.approx(92.0)
    assert out.loc["Super-1", "top micronet"] == pytest.approx(93.0)
    assert out.loc["Super-1", "error reduction %"] == pytest.approx(12.5)  # (8 - 7) / 8
    assert math.isnan(out.loc["EBC-1", "error reduction %"])


def test_missing_repeats_flags_absent_and_unfinished_seeds(trials):
    out = missing_repeats(trials, ["init", "decoder"], seeds={0: [0, 1, 2]})
    rows = {(r[R.DATASET], r["config"]): r for _, r in out.iterrows()}
    assert rows[("Super-1", "micronet × Unet")]["not_completed"] == [2]
    assert rows[("EBC-1", "imagenet × Unet")]["absent"] == [1, 2]
    assert ("Super-1", "imagenet × Unet") not in rows  # all three completed


def test_paired_differences_win_rate_and_unpaired_counts(trials):
    pairs, un_a, un_b = pair_trials(
        trials, "init", "imagenet", "micronet", factors=["init", "decoder"]
    )
    assert sorted(pairs["b"] - pairs["a"]) == [pytest.approx(1.0), pytest.approx(5.0)]
    assert (un_a, un_b) == (2, 0)  # imagenet seed 2 (micronet stopped) and the EBC-1 trial
    res = paired_comparison(trials, "init", "imagenet", "micronet", factors=["init", "decoder"])
    assert res.n_pairs == 2 and res.mean_diff == pytest.approx(3.0)
    assert res.win_rate == 1.0
    assert res.p_value == pytest.approx(sps.wilcoxon([5.0, 1.0]).pvalue)


def test_ties_count_half_a_win():
    rows = [
        ("D", "a", "Unet", s, C, 80.0, t_a) for s, t_a in enumerate([80.0, 85.0, 90.0, 70.0])
    ] + [("D", "b", "Unet", s, C, 80.0, t_b) for s, t_b in enumerate([80.0, 86.0, 88.0, 75.0])]
    res = paired_comparison(trials_table(rows), "init", "a", "b", factors=["init", "decoder"])
    assert res.n_pairs == 4
    assert res.win_rate == pytest.approx((2 + 0.5) / 4)
    assert res.mean_diff == pytest.approx((0 + 1 - 2 + 5) / 4)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    diffs = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_ci(diffs, n_boot=2000, seed=3)
    assert (low, high) == bootstrap_ci(diffs, n_boot=2000, seed=3)
    assert low < diffs.mean() < high
    assert low >= 1.0 and high <= 10.0
    assert bootstrap_ci(np.array([2.0, 2.0]), n_boot=100) == (2.0, 2.0)


def test_paired_by_dataset_adds_pooled_row(trials):
    out = paired_by(trials, "init", "imagenet", "micronet", factors=["init", "decoder"])
    assert list(out[R.DATASET]) == ["EBC-1", "Super-1", "(all)"]
    assert out.set_index(R.DATASET).loc["EBC-1", "n_pairs"] == 0
    assert out.set_index(R.DATASET).loc["(all)", "n_pairs"] == 2
