"""A run as pandas DataFrames and matplotlib figures, for notebooks and for anyone stacking runs.

    import zoorepro
    r = zoorepro.load_run("reports/demo-20261126-101500")
    r.accuracy          # one row per backend (run id and hashes included)
    r.predictions       # one row per image and backend: label, top1..top5, correct@1/@5
    r.bench             # the sweep, one row per backend and batch size
    r.images            # the images of the run: key, .bin file, size

Every table is read from the run folder's files (``accuracy.csv``, ``results/<backend>/
predictions.csv``, ``records/bench.csv``, ``records/dataset.json``), so ``pd.concat`` of many
runs' tables is a table of runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import records, report
from .errors import DataError
from .run import Run


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise DataError("pandas is not installed: pip install pandas") from None
    return pd


@dataclass
class RunTables:
    run: Run

    @property
    def accuracy(self):
        pd = _pandas()
        path = self.run / "accuracy.csv"
        if path.is_file():
            return pd.read_csv(path)
        return pd.DataFrame(columns=records.ACCURACY_COLUMNS)

    @property
    def predictions(self):
        pd = _pandas()
        from .evaluate import PREDICTION_COLUMNS
        parts = [pd.read_csv(p) for p in sorted(self.run.results.glob("*/predictions.csv"))]
        if not parts:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        out = pd.concat(parts, ignore_index=True)
        out.insert(0, "run", self.run.root.name)
        return out

    @property
    def bench(self):
        pd = _pandas()
        path = self.run.records_dir / "bench.csv"
        if path.is_file():
            return pd.read_csv(path)
        return pd.DataFrame(columns=records.BENCH_CSV_FIELDS + records.BENCH_CSV_RUN_FIELDS)

    @property
    def images(self):
        pd = _pandas()
        if not self.run.has(records.DatasetRecord):
            return pd.DataFrame(columns=["image", "bin", "bin_bytes"])
        ds = self.run.read(records.DatasetRecord)
        folder = Path(ds.bin_dir)
        rows = []
        for key in ds.keys:
            path = folder / f"{key}.bin"
            rows.append({"image": key, "bin": str(path),
                         "bin_bytes": path.stat().st_size if path.is_file() else None})
        return pd.DataFrame(rows)


def load_run(path: str | os.PathLike | Run) -> RunTables:
    """The tables of a run folder (see the module's docstring)."""
    return RunTables(path if isinstance(path, Run) else Run.open(path))


# ------------------------------------------------------------------ figures
def throughput_figure(run: Run):
    """Throughput by batch size per backend, with the recipe's published series (a
    matplotlib Figure: zoom, rescale, save it)."""
    data = report.load(run)
    groups: dict = {}
    for r in (data.get("bench") or {}).get("records", []):
        label = f"zoorepro {r['backend']} {r.get('precision', 'fp32')} ({r['device']})"
        groups.setdefault(label, []).append(r)
    return report.plot_throughput(groups, "Throughput by batch size (ais_bench definition)")


def bin_beside_jpeg(run: Run, index: int = 0):
    """One image as the recipe feeds it: the JPEG, and its ``.bin`` decoded (224x224x3 uint8)
    beside it, to see the resize and centre crop."""
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image
    from . import data as data_mod
    ds = run.read(records.DatasetRecord)
    key = ds.keys[index]
    source = next((p for p in data_mod.list_images(ds.data_dir)
                   if data_mod.image_key(p.name) == key), None)
    arr = np.fromfile(Path(ds.bin_dir) / f"{key}.bin", dtype=np.uint8).reshape(224, 224, 3)
    fig = Figure(figsize=(8, 4), dpi=100)
    left, right = fig.subplots(1, 2)
    if source is not None:
        with Image.open(source) as im:
            left.imshow(np.asarray(im.convert("RGB")))
        left.set_title(f"{source.name} ({im.width}x{im.height})", fontsize=8)
    left.axis("off")
    right.imshow(arr)
    right.set_title(f"{key}.bin: 224x224x3 uint8 (what AIPP receives)", fontsize=8)
    right.axis("off")
    fig.tight_layout()
    return fig
