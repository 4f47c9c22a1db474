"""Where each planned trial's published weights come from, checked before launch.

For every (init, encoder) a plan needs from a downloading source (``imagenet``, ``micronet``,
``image-micronet``) :func:`weights_report` says whether the files are in the weights folder,
in a local cache (our download cache, the Hugging Face cache) or would be downloaded at trial
start. Without a network (``--offline``, ``MICROSWEEP_OFFLINE=1``, ``HF_HUB_OFFLINE=1``, or a
short connection probe that fails; ``MICROSWEEP_OFFLINE=0`` skips the probe) planned trials
whose weights would have to be downloaded make the plan refuse in one line naming what to
fetch and the ``microsweep weights fetch`` command.

Example::

    rows = weights_report(exp, plan.points, weights_dir=Path("weights"), offline=None)
    print("\\n".join(format_weights(rows)))
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import UserError
from search.experiment import Experiment
from spaces.dimensions import Distribution, Fixed, Grid
from trainables.weights_dir import FETCHABLE, has_weights, needed_files, resolve_weights_dir

OFFLINE_ENV = "MICROSWEEP_OFFLINE"
PROBE_TIMEOUT_S = 3.0
IN_FOLDER, IN_CACHE, DOWNLOAD = "weights folder", "local cache", "download at trial start"
DEFAULTS = {"encoder": "resnet18", "init": "none"}


@dataclass(frozen=True)
class WeightStatus:
    init: str
    encoder: str
    where: str  # IN_FOLDER, IN_CACHE or DOWNLOAD
    trials: int  # planned trials that need these weights


def experiment_weights_dir(exp: Experiment) -> Path | None:
    """The experiment's ``weights`` key, else ``$MICROSWEEP_WEIGHTS``."""
    return resolve_weights_dir(getattr(exp, "weights", None))


def trial_weights(exp: Experiment) -> dict[str, str]:
    """``{"weights_dir": ...}`` for the trial config when a folder is set and the kind takes it.

    Resolved on the driver, so trials on other nodes get the path without the environment.
    """
    folder = experiment_weights_dir(exp)
    if folder is None or "weights_dir" not in (exp.task.config_keys() or ()):
        return {}
    return {"weights_dir": str(folder)}


def planned_pairs(exp: Experiment, points: Iterable[Mapping[str, Any]]) -> dict[tuple, int]:
    """``{(init, encoder): trials}`` for the downloading sources; Optuna: every candidate."""
    counts: dict[tuple[str, str], int] = {}
    from search.strategies import get_searcher

    if not get_searcher(exp.search.algorithm).expands:  # sampled while running: every candidate
        inits, encoders = _values(exp, "init"), _values(exp, "encoder")
        pairs = [(i, e) for i in inits for e in encoders]
    else:
        pairs = [(p.get("init", "none"), p.get("encoder", "resnet18")) for p in points]
    for init, encoder in pairs:
        if init in FETCHABLE:
            counts[(init, encoder)] = counts.get((init, encoder), 0) + 1
    return counts


def _values(exp: Experiment, key: str) -> list[Any]:
    dim = exp.space.get(key, Fixed(exp.train.get(key, DEFAULTS[key])))
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Grid):
        return list(dim.values)
    return list(dim.args) if isinstance(dim, Distribution) and dim.name == "choice" else []


def _where(init: str, encoder: str, folder: Path | None, cache_dir: Path | None) -> str:
    if has_weights(folder, init, encoder):
        return IN_FOLDER
    return IN_CACHE if _in_local_cache(init, encoder, cache_dir) else DOWNLOAD


def _in_local_cache(init: str, encoder: str, cache_dir: Path | None) -> bool:
    if init == "imagenet":
        from trainables.hub import cached_hub_file
        from trainables.weights_dir import hub_repo

        repo, rev = hub_repo(encoder)
        return cached_hub_file(repo, rev, "model.safetensors") is not None
    from trainables.weights_cache import default_cache_dir

    name = needed_files(init, encoder)[0].source.rsplit("/", 1)[-1]
    return (Path(cache_dir or default_cache_dir()) / "downloads" / name).is_file()


def weights_report(
    exp: Experiment,
    points: Iterable[Mapping[str, Any]],
    *,
    weights_dir: Path | None,
    offline: bool | None = None,
) -> tuple[WeightStatus, ...]:
    """Where the weights of each planned (init, encoder) come from; refuses offline gaps.

    ``offline=None`` decides from the environment and, only when something would be
    downloaded, a short connection probe to the hosts it would come from.
    """
    points = list(points)
    cache_dir = next((p.get("cache_dir") for p in points if p.get("cache_dir")), None)
    rows = []
    for (init, encoder), trials in sorted(planned_pairs(exp, points).items()):
        try:
            where = _where(init, encoder, weights_dir, Path(cache_dir) if cache_dir else None)
        except UserError:
            continue  # no such weights at all: feasibility already drops these points
        rows.append(WeightStatus(init, encoder, where, trials))
    missing = [r for r in rows if r.where == DOWNLOAD]
    if missing and _is_offline(offline, missing):
        raise UserError(refusal(missing, weights_dir))
    return tuple(rows)


def plan_weights(
    exp: Experiment, points: Iterable[Mapping[str, Any]], *, offline: bool | None = None
) -> tuple[WeightStatus, ...]:
    """:func:`weights_report` for the folder the plan's trials will get (the make_plan hook)."""
    folder = trial_weights(exp).get("weights_dir") or resolve_weights_dir(None)
    return weights_report(exp, points, weights_dir=Path(folder) if folder else None,
                          offline=offline)  # fmt: skip


def refusal(missing: list[WeightStatus], weights_dir: Path | None) -> str:
    """The one line refusing an offline sweep: what to fetch and the command that does it."""
    trials = sum(r.trials for r in missing)
    what = ", ".join(f"{r.init} {r.encoder}" for r in missing)
    target = weights_dir or Path("WEIGHTS_DIR")
    setting = "" if weights_dir else f" and set `weights: {target}` in the experiment file"
    return (
        f"no network: {trials} planned trial(s) need weights that are not in the weights "
        f"folder or a local cache ({what}); where there is internet run "
        f"`{fetch_command(missing, target)}`, copy the folder here{setting}; or train "
        "those encoders with init none (random weights), which needs no download"
    )


def fetch_command(rows: Iterable[WeightStatus], folder: Path) -> str:
    """``microsweep weights fetch ENC... --init A,B --to DIR``, one per group of encoders
    needing the same inits (joined with ``&&``), so nothing more than needed is fetched."""
    inits_of: dict[str, list[str]] = {}
    for r in rows:
        inits_of.setdefault(r.encoder, []).append(r.init)
    groups: dict[tuple[str, ...], list[str]] = {}
    for encoder, inits in inits_of.items():
        groups.setdefault(tuple(sorted(set(inits))), []).append(encoder)
    return " && ".join(
        f"microsweep weights fetch {' '.join(encs)} --init {','.join(inits)} --to {folder}"
        for inits, encs in groups.items()
    )


def _is_offline(offline: bool | None, missing: list[WeightStatus]) -> bool:
    if offline is not None:
        return offline
    said = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if said in ("1", "true", "yes"):
        return True
    if said in ("0", "false", "no"):  # explicitly online: no probe
        return False
    hf_offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes")
    if hf_offline and any(r.init == "imagenet" for r in missing):
        return True
    return not all(_reachable(url) for url in {_source_url(r) for r in missing})


def _source_url(row: WeightStatus) -> str:
    if row.init == "imagenet":
        from huggingface_hub import constants

        return constants.ENDPOINT
    return needed_files(row.init, row.encoder)[0].source


def _reachable(url: str) -> bool:
    """A TCP connection to the URL's host within PROBE_TIMEOUT_S (file://: the file exists)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path)).is_file()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ok: list[bool] = []

    def probe() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            socket.create_connection((parsed.hostname, port), timeout=PROBE_TIMEOUT_S).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(ok)


def format_weights(rows: Iterable[WeightStatus]) -> list[str]:
    """Dry-run lines: ``weights imagenet resnet18: weights folder (4 trials)``."""
    return [f"weights {r.init} {r.encoder}: {r.where} ({r.trials} trial(s))" for r in rows]
