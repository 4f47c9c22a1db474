"""A Parquet file read while another thread replaces it is read whole, old or new (trials read
trials.parquet at their start while the driver rewrites it; pq.read_table on a path opens the
file twice and could mix two versions)."""

from __future__ import annotations

import threading

import pyarrow as pa

from core import storage
from core.storage import Location


def test_local_parquet_reads_never_mix_two_versions(tmp_path):
    path = tmp_path / "trials.parquet"
    storage.write_parquet(path, pa.table({"trial": ["a"]}))
    stop = threading.Event()

    def rewrite() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            rows = [f"t{j}" for j in range(i % 50 + 1)]
            storage.write_parquet(path, pa.table({"trial": rows}))

    writer = threading.Thread(target=rewrite)
    writer.start()
    try:
        lengths = {Location.parse(path).read_table(columns=["trial"]).num_rows for _ in range(1000)}
    finally:
        stop.set()
        writer.join()
    assert len(lengths) > 1  # the reads did overlap replacements
