"""The segmentation task: what the launcher needs of a segmentation (or custom) trial, without
the trial itself (:mod:`trainables.segmentation`, which imports torch and smp when the
trainable is asked for). A custom ``kind: package.module:function`` trial's worker, and the
driver's plan, then start without them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import keys as K
from trainables import feasibility
from trainables.config import SegmentationConfig
from trainables.task import (
    BYTES_PER_VALUE,
    TASKS,
    Progress,
    Task,
    TrialStorage,
    get_task,
    import_function,
)

if TYPE_CHECKING:
    from trainables.data.dataset import SegmentationData


class SegmentationTask(Task):
    """Semantic segmentation of micrographs: smp models on a ``data:`` dataset block."""

    name = "segmentation"
    metric = K.VAL_IOU
    best_key = K.BEST_VAL_IOU
    epoch_keys = (K.TRAIN_LOSS, K.VAL_LOSS, K.VAL_IOU, K.LR, K.WALL_S)
    final_prefixes = (K.TEST_IOU, K.TEST_IOU_PREFIX, K.CLASS_IOU_PREFIX)
    config_type = SegmentationConfig

    def precheck(self, points: Sequence[Mapping[str, Any]], progress: Progress | None) -> None:
        feasibility.check_pairs(feasibility.model_pairs(points), progress=progress)

    def check(self, config: Mapping[str, Any]) -> str | None:
        return feasibility.segmentation_reason(config)

    def parse_data(self, raw: Any, *, base_dir: Path) -> Any:
        from trainables.data.spec import DataSpec

        return DataSpec.from_mapping(raw, base_dir=base_dir)

    def load_data(self, spec: Any, *, train: Mapping[str, Any]) -> Any:
        from trainables.data.dataset import load_dataset

        crop = train.get("crop")  # training images must fit a fixed crop
        return load_dataset(spec, crop=crop if isinstance(crop, int) else None)

    def data_info(self, data: SegmentationData, *, spec: Any = None) -> dict[str, Any]:
        from trainables.data.fingerprint import class_map_record, dataset_sha256

        info = {
            "dataset": data.label,
            "classes": list(data.classes),
            "test_splits": list(data.test_splits),
        }
        if spec is not None:  # what a model package records of its training data
            info["class_map"] = class_map_record(spec.classes)
            info["dataset_sha256"] = dataset_sha256(spec)
        return info

    def prepare_run(self, data: SegmentationData, run_dir: Any) -> None:
        write_truth_masks(data, run_dir)

    def trainable(self) -> Callable[..., None]:
        from trainables.segmentation import segmentation_trainable  # torch, smp: in the trial

        return segmentation_trainable

    def trial_storage(
        self, config: Mapping[str, Any], *, data: Any, workers: int = 1
    ) -> TrialStorage | None:
        """fp32 weights and Adam's two moments per state; a completed trial keeps its best
        weights and its predicted test masks (as large as the dataset's)."""
        from trainables.data.layout import held_out_mask_bytes
        from trainables.models import model_parameters

        # without a class map the head's few parameters are counted for 3 classes
        classes = len(getattr(getattr(data, "classes", None), "classes", ())) or 3
        decoder, encoder = (
            str(config.get("decoder", "Unet")),
            str(config.get("encoder", "resnet18")),
        )
        best = BYTES_PER_VALUE * model_parameters(decoder, encoder, classes)
        return TrialStorage(state=3 * best, best=best, kept=best + held_out_mask_bytes(data))


class CustomTask(SegmentationTask):
    """``kind: package.module:function``: a trainable of the user's on segmentation data."""

    config_type = None
    needs_data = False

    def __init__(self, target: str) -> None:
        self.name = target  # type: ignore[misc]

    def __reduce__(self) -> tuple[Any, ...]:  # travels to workers by name
        return (get_task, (self.name,))

    def trainable(self) -> Callable[..., None]:
        return import_function(self.name)

    def trial_storage(self, config: Mapping[str, Any], *, data: Any, workers: int = 1) -> None:
        return None  # what the user's trainable writes is not known


def write_truth_masks(data: SegmentationData, run_dir: Any) -> None:
    """Ground truth of the test splits as index PNGs (``RUN/truth/{split}/{image}.png``).

    Reports draw accuracy maps from these and the predictions in each trial's checkpoint,
    without decoding the dataset again (``analysis`` never imports ``trainables``).
    """
    import io

    from PIL import Image

    from core.storage import Location, write_bytes

    run = Location.parse(run_dir)
    for split in data.test_splits:
        for name, mask in zip(data.splits[split].names, data.splits[split].masks, strict=True):
            path = run / K.TRUTH_DIR / split / f"{name}.png"
            if not path.exists():
                buf = io.BytesIO()
                Image.fromarray(mask).save(buf, format="PNG")
                write_bytes(path, buf.getvalue())


TASKS.add(SegmentationTask.name, SegmentationTask())
