"""A run as pandas DataFrames and matplotlib figures, for notebooks and for anyone stacking runs.

    import zoorepro
    r = zoorepro.load_run("reports/demo-20261126-101500")
    r.accuracy          # one row per backend (run id and hashes included)
    r.predictions       # one row per image and backend: label, top1..top5, correct@1/@5
    r.bench             # the sweep, one row per backend and batch size
    r.bench_definitions # definition_key -> the full throughput definition, once each
    r.images            # the images of the run: key, .bin file, size

Every table is read from the run folder's files (``accuracy.csv``, ``results/<backend>/
predictions.csv``, ``records/bench.csv``, ``records/dataset.json``), so ``pd.concat`` of many
runs' tables is a table of runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from zoorepro.run import records
from zoorepro import report
from zoorepro.errors import DataError
from zoorepro.run.recordcsv import definition_key
from zoorepro.run.folder import Run


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
        from zoorepro.recipe.evaluate import PREDICTION_COLUMNS
        parts = [pd.read_csv(p) for p in sorted(self.run.results.glob("*/predictions.csv"))]
        if not parts:
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        out = pd.concat(parts, ignore_index=True)
        out.insert(0, "run", self.run.root.name)
        return out

    @property
    def bench(self):
        """``records/bench.csv``; its ``definition_key`` is explained by
        :attr:`bench_definitions` (``bench.merge(bench_definitions)`` puts the text back)."""
        pd = _pandas()
        path = self.run.records_dir / "bench.csv"
        if not path.is_file():
            return pd.DataFrame(columns=records.BENCH_CSV_FIELDS + records.BENCH_CSV_RUN_FIELDS)
        out = pd.read_csv(path, dtype={"definition_key": str})
        if "definition_key" not in out and "throughput_definition" in out:   # older runs
            out.insert(out.columns.get_loc("throughput_definition"), "definition_key",
                       [definition_key(t) if isinstance(t, str) else ""
                        for t in out.pop("throughput_definition")])
        return out

    @property
    def bench_definitions(self):
        """One row per throughput definition of the sweep: ``definition_key``, ``definition``
        (the full text, from ``records/bench.json``)."""
        pd = _pandas()
        texts: dict = {}
        if self.run.has(records.BenchRecord):
            for r in self.run.read(records.BenchRecord).records:
                text = r.throughput_definition
                if text:
                    texts.setdefault(definition_key(text), text)
        return pd.DataFrame({"definition_key": list(texts), "definition": list(texts.values())})

    @property
    def ladder(self):
        """The ladder's per-image table (``ladder.csv``): each image's top-1 class per row
        and whether it differs from row b; the rows' summary is ``records.ladder``."""
        pd = _pandas()
        path = self.run / "ladder.csv"
        if not path.is_file():
            return pd.DataFrame(columns=["image", "label"])
        return pd.read_csv(path)

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


def ladder(run: Run):
    """The ladder's per-image table of ``run`` (:attr:`RunTables.ladder`)."""
    return load_run(run).ladder


# ------------------------------------------------------------------ figures
def throughput_figure(run: Run):
    """Throughput by batch size per backend, with the recipe's published series (a
    matplotlib Figure: zoom, rescale, save it)."""
    from zoorepro.report.plotstyle import series_groups
    from zoorepro.report.sections import THROUGHPUT_FIGURE_TITLE
    data = report.load(run)
    return report.plot_throughput(series_groups(data.bench_rows), THROUGHPUT_FIGURE_TITLE,
                                  data.recipe.throughput_labels() if data.recipe else {})


def bin_beside_jpeg(run: Run, index: int = 0):
    """One image as the recipe feeds it: the JPEG, and its ``.bin`` decoded (uint8 HWC, the
    AIPP config's source size) beside it, to see the resize and centre crop."""
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image
    from zoorepro.recipe import data as data_mod
    ds = run.read(records.DatasetRecord)
    key = ds.keys[index]
    pp = run.recipe.preprocess
    source = next((p for p in data_mod.list_images(ds.data_dir, layout=pp.layout,
                                                   extensions=pp.extensions)
                   if data_mod.image_key(p.name) == key), None)
    side = pp.crop
    arr = np.fromfile(Path(ds.bin_dir) / f"{key}.bin", dtype=np.uint8).reshape(side, side, 3)
    fig = Figure(figsize=(8, 4), dpi=100)
    left, right = fig.subplots(1, 2)
    if source is not None:
        with Image.open(source) as im:
            left.imshow(np.asarray(im.convert("RGB")))
        left.set_title(f"{source.name} ({im.width}x{im.height})", fontsize=8)
    left.axis("off")
    right.imshow(arr)
    right.set_title(f"{key}.bin: {side}x{side}x3 uint8 (what AIPP receives)", fontsize=8)
    right.axis("off")
    fig.tight_layout()
    return fig
