"""The encoder zoo: atomic export with a manifest, verified loads, names answered with choices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import UserError
from trainables.models import create_model, encoder_state_dict
from trainables.zoo import (
    SCHEMA_VERSION,
    export_encoder,
    get_zoo_entry,
    load_zoo,
    load_zoo_weights,
)

ENC = "tu-test_resnet"


def _export(zoo: Path, name: str, seed: int = 0, **kw) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = encoder_state_dict(create_model(decoder="Unet", encoder=ENC, num_classes=2))
    export_encoder(
        zoo, name=name, encoder=ENC, state_dict=state, init="none", dataset="synth",
        val_top1=0.5, val_top5=0.9, **kw,
    )  # fmt: skip
    return state


def test_export_writes_manifest_and_weights(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    _export(zoo, "tiny-a")
    manifest = json.loads((zoo / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    entry = manifest["entries"]["tiny-a"]
    assert entry["encoder"] == ENC and entry["init"] == "none" and entry["dataset"] == "synth"
    assert entry["file"] == "tiny-a.safetensors" and len(entry["sha256"]) == 64
    assert (entry["val_top1"], entry["val_top5"]) == (0.5, 0.9)
    assert sorted(p.name for p in zoo.iterdir()) == [".lock", "manifest.json", "tiny-a.safetensors"]


def test_zoo_init_loads_the_exported_tensors(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    exported = _export(zoo, "tiny-a", seed=7)
    for init in ("zoo:tiny-a", "tiny-a"):  # a bare zoo name works too
        model = create_model(decoder="FPN", encoder=ENC, num_classes=3, init=init, zoo_dir=zoo)
        loaded = encoder_state_dict(model)
        assert loaded.keys() == exported.keys()
        assert all(torch.equal(loaded[k], exported[k]) for k in exported)


def test_unknown_entry_answers_with_nearest(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    _export(zoo, "tiny-a")
    with pytest.raises(UserError, match="unknown zoo entry 'tiny-b'; did you mean 'tiny-a'"):
        get_zoo_entry(zoo, "tiny-b")
    with pytest.raises(UserError, match="unknown init source 'tiny-b'; did you mean 'tiny-a'"):
        create_model(decoder="Unet", encoder=ENC, num_classes=2, init="tiny-b", zoo_dir=zoo)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    _export(zoo, "tiny-a")
    path = zoo / "tiny-a.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01  # safetensors alone would not notice a flipped data byte
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="corrupt or was replaced"):
        load_zoo_weights(zoo, "tiny-a")


def test_existing_name_is_not_overwritten_silently(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    first = _export(zoo, "tiny-a", seed=1)
    with pytest.raises(UserError, match="exists"):
        _export(zoo, "tiny-a", seed=2)
    _, kept = load_zoo_weights(zoo, "tiny-a")
    assert all(torch.equal(kept[k], first[k]) for k in first)
    second = _export(zoo, "tiny-a", seed=2, overwrite=True)
    _, now = load_zoo_weights(zoo, "tiny-a")
    assert all(torch.equal(now[k], second[k]) for k in second)


def test_wrong_encoder_and_bad_names_are_explained(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    _export(zoo, "tiny-a")
    with pytest.raises(UserError, match="holds a tu-test_resnet encoder, but the model uses"):
        create_model(
            decoder="Unet", encoder="resnet18", num_classes=2, init="zoo:tiny-a", zoo_dir=zoo
        )
    with pytest.raises(UserError, match=r"zoo name '\.\./x' is not allowed"):
        _export(zoo, "../x")
    with pytest.raises(UserError, match="needs a zoo folder"):
        create_model(decoder="Unet", encoder=ENC, num_classes=2, init="zoo:tiny-a")


def test_broken_manifest_is_one_line(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "manifest.json").write_text('{"schema_version": 1, "entr')
    with pytest.raises(UserError, match="unreadable zoo manifest"):
        load_zoo(zoo)
    with pytest.raises(UserError, match=r"zoo folder .* not found"):
        load_zoo(tmp_path / "missing")
