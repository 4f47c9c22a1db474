"""Init sources: downloads verified by SHA-256, pickles with code refused, weights really loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from core.errors import UserError
from trainables.inits import (
    MICRONET_URL_ENV,
    check_available,
    list_inits,
    load_weights_file,
    micronet_url,
    resolve_init,
)
from trainables.models import create_model, encoder_state_dict
from trainables.weights_cache import fetch

ENC = "resnet18"
REPO = Path(__file__).resolve().parents[1]


def _published_encoder(seed: int) -> dict[str, torch.Tensor]:
    """An encoder state dict as NASA publishes it: DataParallel ``module.`` keys and an ``fc``."""
    torch.manual_seed(seed)
    model = create_model(decoder="Unet", encoder=ENC, num_classes=2)
    state = {f"module.{k}": v for k, v in encoder_state_dict(model).items()}
    state["module.fc.weight"] = torch.zeros(10, 512)
    state["module.fc.bias"] = torch.zeros(10)
    return state


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A local mirror of NASA's bucket reached through a ``file://`` base URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    monkeypatch.setenv(MICRONET_URL_ENV, folder.as_uri())
    return folder


def _publish(mirror: Path, kind: str, seed: int) -> dict[str, torch.Tensor]:
    state = _published_encoder(seed)
    torch.save(state, mirror / micronet_url(ENC, kind, "x").rsplit("/", 1)[-1])
    return state


def test_registry_lists_every_source() -> None:
    assert list_inits() == ["none", "imagenet", "micronet", "image-micronet", "local:…", "zoo:…"]


def test_nasa_file_names_follow_the_published_scheme() -> None:
    base = "https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models"
    assert micronet_url("resnet18", "micronet") == (
        f"{base}/resnet18_pretrained_microscopynet_v1.0.pth.tar"
    )
    assert micronet_url("resnet50", "micronet").endswith(
        "resnet50_pretrained_microscopynet_v1.1.pth.tar"
    )
    assert micronet_url("resnet50", "image-micronet").endswith(
        "resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar"
    )
    with pytest.raises(UserError, match="unknown micronet encoder 'resnet19'; did you mean"):
        micronet_url("resnet19", "micronet")


def test_micronet_downloads_once_into_the_cache_and_loads(mirror: Path, tmp_path: Path) -> None:
    published = _publish(mirror, "micronet", seed=1)
    cache = tmp_path / "cache"
    model = create_model(
        decoder="Unet", encoder=ENC, num_classes=2, init="micronet", cache_dir=cache
    )
    loaded = encoder_state_dict(model)
    for key, value in loaded.items():  # `module.` stripped, `fc` dropped, every tensor equal
        assert torch.equal(value, published[f"module.{key}"]), key
    manifest = json.loads((cache / "manifest.json").read_text())
    record = manifest["files"]["resnet18_pretrained_microscopynet_v1.0.pth.tar"]
    assert len(record["sha256"]) == 64 and record["url"].startswith("file://")
    # second use: served from the cache even when the mirror is gone
    for file in mirror.iterdir():
        file.unlink()
    again = resolve_init("micronet", ENC, cache_dir=cache)
    assert again is not None and torch.equal(
        again["module.conv1.weight"], published["module.conv1.weight"]
    )


def test_changed_bytes_are_refused(mirror: Path, tmp_path: Path) -> None:
    _publish(mirror, "image-micronet", seed=1)
    cache = tmp_path / "cache"
    path = fetch(micronet_url(ENC, "image-micronet"), cache)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF  # one flipped byte in the cached copy
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"sha256 .* expected .*refusing") as err:
        resolve_init("image-micronet", ENC, cache_dir=cache)
    assert "\n" not in str(err.value)


def test_a_republished_file_with_other_bytes_is_refused(mirror: Path, tmp_path: Path) -> None:
    _publish(mirror, "micronet", seed=1)
    cache = tmp_path / "cache"
    path = fetch(micronet_url(ENC, "micronet"), cache)
    path.unlink()
    _publish(mirror, "micronet", seed=2)  # the server now serves different weights
    with pytest.raises(UserError, match="refusing it"):
        fetch(micronet_url(ENC, "micronet"), cache)
    assert not path.exists() and not list(path.parent.glob("*.tmp"))


def test_pinned_hash_is_enforced_on_first_download(mirror: Path, tmp_path: Path) -> None:
    _publish(mirror, "micronet", seed=1)
    with pytest.raises(UserError, match="expected 0000000000000000"):
        fetch(micronet_url(ENC, "micronet"), tmp_path / "cache", sha256="0" * 64)


def test_offline_download_is_one_line_naming_url_and_remedy(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MICRONET_URL_ENV, (tmp_path / "nowhere").as_uri())
    with pytest.raises(UserError) as err:
        resolve_init("micronet", ENC, cache_dir=tmp_path / "cache")
    msg = str(err.value)
    assert "\n" not in msg and "cannot download file://" in msg and "local:PATH" in msg


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_carrying_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Exploit(marker)}, evil)
    with pytest.raises(UserError, match=r"refusing to load .*evil\.pth") as err:
        create_model(decoder="Unet", encoder=ENC, num_classes=2, init=f"local:{evil}")
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_local_safetensors_loads_and_mismatch_is_explained(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = create_model(decoder="FPN", encoder=ENC, num_classes=2)
    good = tmp_path / "enc.safetensors"
    expected = encoder_state_dict(source)
    save_file(expected, str(good))
    model = create_model(decoder="Unet", encoder=ENC, num_classes=4, init=f"local:{good}")
    assert all(torch.equal(v, expected[k]) for k, v in encoder_state_dict(model).items())
    other = create_model(decoder="Unet", encoder="resnet34", num_classes=2)
    bad = tmp_path / "r34.pth"
    torch.save(encoder_state_dict(other), bad)
    with pytest.raises(UserError, match=r"do not fit encoder .*missing 0 .*unexpected \d+ \(layer"):
        create_model(decoder="Unet", encoder=ENC, num_classes=2, init=f"local:{bad}")


def test_missing_local_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"weights file .*nope\.pth not found"):
        load_weights_file(tmp_path / "nope.pth")


def test_imagenet_offline_is_one_line_saying_how_to_provide(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = (
        "from core.errors import UserError\n"
        "from trainables.inits import resolve_init\n"
        "try:\n    resolve_init('imagenet', 'resnet18')\n"
        "except UserError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout + out.stderr
    assert "smp-hub/resnet18.imagenet" in lines[0] and "hf download" in lines[0]
    assert "local:PATH" in lines[0]


def test_availability_is_checked_without_downloading(tmp_path: Path) -> None:
    from trainables.inits import check_available

    assert check_available("none", ENC) is None
    assert check_available("micronet", ENC) is None
    assert "unknown micronet encoder" in (check_available("micronet", "mit_b0") or "")
    assert check_available("image-micronet", "efficientnet-b7") is None
    assert check_available("imagenet", ENC) is None
    assert "not found" in (check_available(f"local:{tmp_path / 'x.pth'}", ENC) or "")
    with pytest.raises(UserError, match="did you mean 'micronet'"):
        check_available("micronett", ENC)


def test_encoder_placeholder_picks_each_encoders_zoo_entry(tmp_path: Path) -> None:
    from trainables.zoo import export_encoder

    for encoder in ("resnet18", "resnet34"):
        model = create_model(decoder="Unet", encoder=encoder, num_classes=2)
        export_encoder(
            tmp_path, name=f"micro-{encoder}", encoder=encoder,
            state_dict=encoder_state_dict(model), init="none", dataset="synth",
            val_top1=0.5, val_top5=1.0,
        )  # fmt: skip
    init = "zoo:micro-{encoder}"
    r34 = create_model(
        decoder="FPN", encoder="resnet34", num_classes=2, init=init, zoo_dir=tmp_path
    )
    exported = load_weights_file(tmp_path / "micro-resnet34.safetensors")
    for key, tensor in exported.items():
        assert torch.equal(r34.encoder.state_dict()[key], tensor)
    assert check_available("zoo:micro-{encoder}", "resnet18", zoo_dir=tmp_path) is None
    reason = check_available("zoo:micro-{encoder}", "resnet50", zoo_dir=tmp_path)
    assert reason is not None and "micro-resnet50" in reason
