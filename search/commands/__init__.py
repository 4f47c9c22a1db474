"""CLI subcommands: one module each, with ``register(subparsers)``.

Each module keeps its top-level imports light (no torch/ray) so that ``microsweep --help``
stays fast; heavy imports happen inside the command's function.
"""

COMMAND_MODULES = (
    "init", "data", "list", "train", "pretrain", "sweep", "status", "recommend", "report",
    "export", "predict", "simulate", "weights",
)  # fmt: skip
