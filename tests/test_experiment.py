from pathlib import Path

import pytest
import yaml

from core.errors import UserError
from search.experiment import SchedulerSettings, apply_override, load_experiment, parse_experiment
from spaces.dimensions import Distribution, Fixed, Grid

BASE = {
    "name": "t",
    "kind": "segmentation",
    "data": {"root": ".", "classes": "superalloy"},
    "space": {
        "encoder": ["resnet18", "mobilenet_v2"],
        "bce_weight": {"uniform": [0.3, 0.9]},
        "lr": 2.0e-4,
    },
    "repeats": 2,
    "scheduler": {"name": "asha", "max_epochs": 20, "grace_epochs": 2},
    "train": {"crop": 64},
}


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_parses_into_frozen_typed_experiment(tmp_path):
    exp = load_experiment(write(tmp_path, BASE))
    assert isinstance(exp.space["encoder"], Grid)
    assert isinstance(exp.space["bce_weight"], Distribution)
    assert exp.space["lr"] == Fixed(2.0e-4)
    assert exp.scheduler == SchedulerSettings("asha", 20, 2, 3)
    assert exp.seeds == [0, 1]
    assert exp.data.root == tmp_path.resolve()  # relative to the file's folder
    with pytest.raises(AttributeError):
        exp.repeats = 3  # type: ignore[misc]


def test_grace_above_max_is_named_with_both_values(tmp_path):
    raw = {**BASE, "scheduler": {"max_epochs": 20, "grace_epochs": 50}}
    with pytest.raises(UserError) as err:
        load_experiment(write(tmp_path, raw))
    assert str(err.value) == (
        "scheduler.grace_epochs must be <= scheduler.max_epochs, but got 50 > 20"
    )
    # FIFO has no rungs: a preset's grace stays harmless after --set scheduler.name=fifo
    fifo = {**BASE, "scheduler": {"name": "fifo", "max_epochs": 2, "grace_epochs": 20}}
    assert load_experiment(write(tmp_path, fifo)).scheduler.rungs() == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("schedular.name=fifo", "did you mean `scheduler`?"),
        ("scheduler.grace=3", "did you mean `scheduler.grace_epochs`?"),
        ("space.encodr=[resnet18]", "did you mean `space.encoder`?"),
        ("search.algorithm=gird", "did you mean 'grid'?"),
        ("space.lr={logunform: [1.0e-5, 1.0e-3]}", "did you mean 'loguniform'?"),
        ("space.lr={loguniform: [0, 1.0e-3]}", "low must be > 0"),
        ("repeats=0", "repeats must be >= 1, but got 0"),
        ("train.seed=3", "`train.seed` is set by `repeats`"),
        ("data.root=nowhere", "`data.root`"),
        ("resources.gpu=1.5", "whole number"),
    ],
)
def test_bad_values_get_one_line_naming_the_key(tmp_path, override, message):
    with pytest.raises(UserError) as err:
        load_experiment(write(tmp_path, BASE), overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_overrides_are_yaml_scalars_and_reach_nested_keys(tmp_path):
    exp = load_experiment(
        write(tmp_path, BASE),
        overrides=[
            "scheduler.max_epochs=40",
            "space.decoder=[Unet, FPN]",
            "resources.gpu=0.25",
            "search.algorithm=random",
        ],
    )
    assert exp.scheduler.max_epochs == 40
    assert exp.space["decoder"] == Grid(("Unet", "FPN"))
    assert exp.resources.gpu == 0.25
    assert exp.search.algorithm == "random"


def test_override_without_equals_is_refused():
    with pytest.raises(UserError, match=r"key\.sub=value"):
        apply_override({}, "scheduler.max_epochs")


def test_optuna_refuses_repeats(tmp_path):
    with pytest.raises(UserError, match=r"repeats must be 1 with search\.algorithm=optuna"):
        load_experiment(write(tmp_path, BASE), overrides=["search.algorithm=optuna"])


def test_missing_file_and_bad_yaml_are_one_line(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_experiment(bad)


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_experiment(bad)


def test_storage_uri_is_kept_as_a_uri_and_the_run_folder_joins_the_name(tmp_path):
    def storage(value: str):
        raw = {"name": "x", "kind": "custom:fn", "space": {"lr": 0.1}, "storage": value}
        return parse_experiment(raw, base_dir=tmp_path)

    exp = storage("s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http")
    assert str(exp.run_dir) == "s3://bucket/runs/x?endpoint_override=127.0.0.1:9000&scheme=http"
    assert str(storage("s3://bucket").run_dir) == "s3://bucket/x"
    assert str(storage("file:///mnt/runs/").run_dir) == "file:///mnt/runs/x"
    assert str(storage("runs").run_dir) == str(Path.cwd() / "runs" / "x")  # from the cwd
    with pytest.raises(UserError, match="not a valid URI"):
        storage("3s://bucket")
    with pytest.raises(UserError, match="storage must be a folder path or a URI"):
        storage(["runs"])


def test_dry_run_prints_a_uri_run_folder(tmp_path, capsys):
    from search.cli import main

    exp = tmp_path / "exp.yaml"
    uri = (tmp_path / "runs").as_uri()  # file:///...
    exp.write_text(
        "name: x\nkind: segmentation\ndata: {root: ., classes: superalloy}\n"
        f"space: {{encoder: resnet18, decoder: Unet}}\nstorage: {uri}\n"
    )
    assert main(["sweep", str(exp), "--dry-run"]) == 0
    assert f"run folder {uri}/x\n" in capsys.readouterr().out


def test_a_relative_zoo_dir_is_the_experiment_files(tmp_path):
    """Trials run in Ray's working folders: a relative `train.zoo_dir` was written there (a
    pretraining sweep's encoders were lost in /tmp/ray) or not found (a zoo init)."""
    (tmp_path / "mn").mkdir()
    (tmp_path / "exp.yaml").write_text(
        "name: p\nkind: pretraining\ndata: {root: mn}\nspace: {encoder: resnet18}\n"
        "train: {zoo_dir: zoo, zoo_name: mn}\n"
    )
    exp = load_experiment(tmp_path / "exp.yaml")
    assert exp.train["zoo_dir"] == str(tmp_path.resolve() / "zoo")
    raw = {"name": "q", "kind": "pretraining", "data": {"root": "mn"},
           "space": {"encoder": "resnet18"},
           "train": {"zoo_dir": "/z", "zoo_name": "mn"}}  # fmt: skip
    absolute = parse_experiment(raw, base_dir=tmp_path)
    assert absolute.train["zoo_dir"] == "/z"


def test_the_run_folders_copy_keeps_the_spaces_order(tmp_path):
    from search.launch import load_saved_experiment, save_experiment

    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**BASE, "storage": str(tmp_path / "runs")}, sort_keys=False))
    exp = load_experiment(path)
    save_experiment(exp)  # labels list the factors in this order, on a resume too
    assert list(load_saved_experiment(exp.run_dir).space) == ["encoder", "bce_weight", "lr"]
