"""`microsweep weights`: fetch from mirrors and a hub cache, verify, and use the folder offline."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
import yaml
from safetensors.torch import save_file

from core.errors import UserError
from search.cli import main
from search.experiment import load_experiment
from search.plan import format_plan, make_plan
from search.weights import DOWNLOAD, IN_CACHE, IN_FOLDER
from tests.test_inits import _publish
from trainables.inits import MICRONET_URL_ENV
from trainables.models import create_model, encoder_state_dict
from trainables.weights_dir import list_weights, verify_weights, weights_file

ENC = "resnet18"
SETTINGS = smp.encoders.encoders[ENC]["pretrained_settings"]["imagenet"]
REPO_ID, REV = SETTINGS["repo_id"], SETTINGS["revision"]
NASA_FILE = "micronet/resnet18_pretrained_microscopynet_v1.0.pth.tar"
HUB_FILE = f"hub/models--smp-hub--resnet18.imagenet/snapshots/{REV}/model.safetensors"


def _refuse_remote(address) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1"):
        raise OSError(f"network blocked by the test ({host})")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block every connection and name lookup that leaves the machine (loopback stays)."""
    real_connect, real_lookup = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _refuse_remote(address)
        return real_connect(self, address)

    def lookup(host, *args, **kwargs):
        _refuse_remote((host,))
        return real_lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network) -> dict:
    """A file:// mirror of NASA's bucket and a Hugging Face hub cache with weights made here."""
    import huggingface_hub.constants as hf

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(MICRONET_URL_ENV, mirror.as_uri())
    micronet = _publish(mirror, "micronet", seed=1)
    snapshot = tmp_path / "hf" / "models--smp-hub--resnet18.imagenet" / "snapshots" / REV
    snapshot.mkdir(parents=True)
    torch.manual_seed(2)
    imagenet = encoder_state_dict(create_model(decoder="Unet", encoder=ENC, num_classes=2))
    save_file(imagenet, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text(json.dumps({"encoder": ENC}))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MICROSWEEP_CACHE", str(tmp_path / "cache"))
    return {"mirror": mirror, "hf": tmp_path / "hf", "micronet": micronet, "imagenet": imagenet}


def _forget_sources(src: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After the fetch: the mirror and hub cache are gone, only the weights folder is left."""
    import huggingface_hub.constants as hf

    for file in src["mirror"].iterdir():
        file.unlink()
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty-hf"))


def _fetch(folder: Path) -> int:
    return main(["weights", "fetch", ENC, "--init", "imagenet,micronet", "--to", str(folder)])


def test_fetch_records_hashes_and_the_folder_loads_offline(sources, tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    assert _fetch(folder) == 0
    manifest = json.loads((folder / "manifest.json").read_text())["files"]
    assert set(manifest) == {
        NASA_FILE,
        HUB_FILE,
        HUB_FILE.replace("model.safetensors", "config.json"),
    }
    assert all(len(r["sha256"]) == 64 and r["size"] > 0 for r in manifest.values())
    assert manifest[NASA_FILE]["source"].startswith("file://")
    assert manifest[HUB_FILE]["source"] == f"hf://{REPO_ID}@{REV}/model.safetensors"
    assert not list(folder.rglob("*.tmp"))
    assert main(["weights", "verify", str(folder)]) == 0
    assert {(r["init"], r["verified"]) for r in list_weights(folder)} == {
        ("imagenet", "yes"), ("micronet", "yes")
    }  # fmt: skip
    _forget_sources(sources, monkeypatch, tmp_path)
    for init, published in (("micronet", sources["micronet"]), ("imagenet", sources["imagenet"])):
        model = create_model(decoder="Unet", encoder=ENC, num_classes=2, init=init,
                             weights_dir=folder)  # fmt: skip
        for key, value in encoder_state_dict(model).items():
            expected = published.get(f"module.{key}", published.get(key))
            assert torch.equal(value, expected), (init, key)
    # the folder is a Hugging Face cache, so plain smp finds the files offline too
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(folder / "hub"))
    assert smp.encoders.get_encoder(ENC, weights="imagenet") is not None
    # fetching again keeps what is there
    assert _fetch(folder) == 0


def test_a_tampered_file_is_refused_by_verify_and_by_the_trial(sources, tmp_path, capsys):
    folder = tmp_path / "weights"
    assert _fetch(folder) == 0
    path = folder / NASA_FILE
    raw = bytearray(path.read_bytes())
    raw[-50] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["weights", "verify", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and NASA_FILE.rsplit("/", 1)[-1] in err[0] and "sha256" in err[0]
    with pytest.raises(UserError, match=r"refusing weights for init 'micronet'.*sha256") as e:
        create_model(decoder="Unet", encoder=ENC, num_classes=2, init="micronet",
                     weights_dir=folder)  # fmt: skip
    assert "\n" not in str(e.value)
    (folder / HUB_FILE).write_bytes((folder / HUB_FILE).read_bytes()[:-10])  # truncated
    assert len(verify_weights(folder)) == 2
    assert main(["weights", "list", str(folder)]) == 2
    with pytest.raises(UserError, match="truncated"):
        weights_file(folder, "imagenet", ENC)


def _experiment(tmp_path: Path, data: Path | str = ".", **extra) -> Path:
    raw = {
        "name": "offline",
        "data": {"root": str(data), "classes": "superalloy"},
        "space": {"encoder": ENC, "decoder": "Unet", "init": ["none", "imagenet", "micronet"]},
        "scheduler": {"name": "fifo", "max_epochs": 1},
        "storage": str(tmp_path / "runs"),
        **extra,
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_offline_plan_refuses_with_the_fetch_command_and_plans_all_with_the_folder(
    sources, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("MICROSWEEP_OFFLINE", raising=False)  # decided by the probe: blocked
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    _forget_sources(sources, monkeypatch, tmp_path)  # nothing cached, nothing reachable
    exp_file = _experiment(tmp_path)
    with pytest.raises(UserError) as err:
        make_plan(load_experiment(exp_file))
    line = str(err.value)
    assert "\n" not in line and "no network: 2 planned trial(s)" in line
    assert "imagenet resnet18, micronet resnet18" in line
    assert "`microsweep weights fetch resnet18 --init imagenet,micronet --to WEIGHTS_DIR`" in line
    assert line.endswith("with init none (random weights), which needs no download")
    assert main(["sweep", str(exp_file), "--dry-run", "--offline"]) == 2
    assert "microsweep weights fetch" in capsys.readouterr().err
    # with the sources back, fetch exactly what the experiment plans, into its `weights:` key
    sources = _restore(sources, monkeypatch, tmp_path)
    exp_file = _experiment(tmp_path, weights="w")  # relative to the experiment file
    assert main(["weights", "fetch", "--from-experiment", str(exp_file)]) == 0
    assert {r["init"] for r in list_weights(tmp_path / "w")} == {"imagenet", "micronet"}
    _forget_sources(sources, monkeypatch, tmp_path)
    plan = make_plan(load_experiment(exp_file), offline=True)
    assert plan.trials == 3 and not plan.infeasible
    assert {(w.init, w.where) for w in plan.weights} == {("imagenet", IN_FOLDER),
                                                         ("micronet", IN_FOLDER)}  # fmt: skip
    assert all(p["weights_dir"] == str(tmp_path / "w") for p in plan.points)
    assert "weights micronet resnet18: weights folder (1 trial(s))" in format_plan(plan)


def _restore(sources: dict, monkeypatch, tmp_path: Path) -> dict:
    import huggingface_hub.constants as hf

    _publish(sources["mirror"], "micronet", seed=1)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(sources["hf"]))
    return sources


def test_dry_run_says_where_each_weight_comes_from(sources, tmp_path, monkeypatch):
    exp = load_experiment(_experiment(tmp_path))
    plan = make_plan(exp, offline=False)
    where = {w.init: w.where for w in plan.weights}
    assert where == {"imagenet": IN_CACHE, "micronet": DOWNLOAD}  # the hub cache has imagenet
    monkeypatch.setenv("MICROSWEEP_WEIGHTS", str(tmp_path / "env-weights"))
    assert _fetch(tmp_path / "env-weights") == 0
    plan = make_plan(exp, offline=True)
    assert {w.where for w in plan.weights} == {IN_FOLDER}
    assert plan.points[0]["weights_dir"] == str(tmp_path / "env-weights")


def test_fetch_failures_are_one_line_each_and_exit_2(tmp_path, capsys, monkeypatch, no_network):
    monkeypatch.setenv(MICRONET_URL_ENV, (tmp_path / "nowhere").as_uri())
    monkeypatch.setenv("MICROSWEEP_CACHE", str(tmp_path / "cache"))
    code = main(["weights", "fetch", ENC, "mit_b0", "--init", "micronet", "--to", str(tmp_path)])
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("microsweep: error")]
    assert code == 2 and len(err) == 2
    assert "cannot download file://" in err[0] and "unknown micronet encoder 'mit_b0'" in err[1]
    assert main(["weights", "fetch", ENC, "--init", "micronett", "--to", str(tmp_path)]) == 2
    assert "did you mean 'micronet'" in capsys.readouterr().err
    assert main(["weights", "verify", str(tmp_path / "none")]) == 2


@pytest.mark.slow
def test_an_offline_sweep_trains_every_trial_from_the_folder(
    ray_local, sources, tmp_path, monkeypatch
):
    from search.launch import run_sweep
    from trainables.data.synth import generate

    folder = tmp_path / "weights"
    assert _fetch(folder) == 0
    _forget_sources(sources, monkeypatch, tmp_path)  # trials can only use the folder
    data = generate("superalloy", tmp_path / "synth", seed=0, n_train=2, n_val=1, n_test=1,
                    size=64)  # fmt: skip
    exp_file = _experiment(
        tmp_path, data=data, weights=str(folder),
        space={"encoder": ENC, "decoder": "Unet", "init": ["imagenet", "micronet"]},
        train={"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "patience": 1,
               "eval_tile": 64, "eval_overlap": 0},
    )  # fmt: skip
    monkeypatch.setenv("MICROSWEEP_OFFLINE", "1")
    result = run_sweep(load_experiment(exp_file))
    rows = {r["init"]: r for r in result.trials}
    assert set(rows) == {"imagenet", "micronet"}
    assert all(r["status"] == "completed" for r in rows.values()), rows


@pytest.mark.parametrize(
    ("value", "message"),
    [(3, r"`weights` must be a folder path, but got 3"),
     ("s3://bucket/weights", r"only local or shared-mount paths")],
)  # fmt: skip
def test_a_bad_weights_key_is_one_line(tmp_path, value, message):
    with pytest.raises(UserError, match=message) as err:
        load_experiment(_experiment(tmp_path, weights=value))
    assert "\n" not in str(err.value)
