"""``microsweep export RUN [TRIAL ...] [--out DIR] [--ensemble]``: a trial as a model package."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  microsweep export runs/super1                      # best completed trial -> runs/super1/model
  microsweep export runs/super1 unet_resnet18_0 --out super1-model
  microsweep export runs/super1 t1 t2 t3 --ensemble --out super1-ensemble"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained trial (or an ensemble of trials) as a model package",
        description="Write model.safetensors, model.json and README.txt: a folder that "
        "'microsweep predict' (or trainables.package.load_model) uses on new micrographs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN", help="run folder of a sweep (local path or URI)")
    p.add_argument(
        "trials",
        nargs="*",
        metavar="TRIAL",
        help="trial name(s) from trials.parquet (default: best completed by val IoU)",
    )
    p.add_argument("--out", metavar="DIR", help="package folder (default: RUN/model)")
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="export all TRIALs as one ensemble (probabilities averaged)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a package in --out")
    p.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json

    from search.export import export_model
    from trainables.package import META_FILE

    out = export_model(args.run, args.trials or None, args.out, ensemble=args.ensemble,
                       overwrite=args.overwrite)  # fmt: skip
    meta = json.loads((out / META_FILE).read_text())
    members = meta["provenance"]["members"]
    names = ", ".join(f"{m['trial']} (val IoU {m['val_iou']:.3f})" for m in members)
    print(f"exported {meta['decoder']}-{meta['encoder']} from {names} to {out}")
    print(f"next: microsweep predict {out} IMAGES... --out predictions")
    return 0
