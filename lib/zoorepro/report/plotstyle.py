"""The look of zoorepro's throughput figures, in one place: the report, the compare page and
the notebooks (``tables.throughput_figure``) all draw them with :func:`plot_throughput`.

* One colour per series everywhere (:data:`PUBLISHED_COLOURS`, :func:`colour_of`): the
  recipe's published series (one per chip, in the recipe file's order) always have their own
  colours, never in :data:`PALETTE`; any other series is keyed by
  what produced it (:func:`series_key`: backend, precision, device; onnxruntime blue, torch
  orange, ais_bench green first), so it has the same colour in the report, its notebook and
  a comparison.  Within one figure two series never
  share a colour (:func:`colours_for` moves a later one to the next free colour).
* Batch sizes as numbers on a log2 axis (:func:`batch_axis`): 1, 2, 4, ... 64, never 2^k.

Notebooks may use the same colours: ``from zoorepro.report.plotstyle import colour_of``.
"""
from __future__ import annotations

import hashlib

# the recipe's published series, first chip first: fixed, never in PALETTE
PUBLISHED_COLOURS = ("#7b3294", "#a6611a", "#5e3c99", "#8c510a")
INVALID_COLOUR = "#d62728"      # the cross on a point whose timing is not to be trusted
# every other series: a colour picked from its key (stable across processes and machines),
# a known backend's first
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#17becf", "#e377c2", "#7f7f7f", "#bcbd22",
           "#393b79", "#e7ba52")
BACKEND_SLOTS = {"onnxruntime": 0, "torch": 1, "ais_bench": 2}


def series_key(rec) -> str:
    """What identifies one of our series (``rec``: a ``records.BenchRow``):
    ``backend precision (device)``."""
    return f"{rec.backend} {rec.precision or 'fp32'} ({rec.device})"


def _slot(key: str) -> int:
    backend = key.split(" ", 1)[0]
    if backend in BACKEND_SLOTS:
        return BACKEND_SLOTS[backend]
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) % len(PALETTE)


def colour_of(key: str, published=()) -> str:
    """The colour of the series ``key``: the k-th of ``published`` (the recipe's published
    series' names) its fixed colour, any other (a :func:`series_key`) from the palette."""
    published = list(published)
    if key in published:
        return PUBLISHED_COLOURS[published.index(key) % len(PUBLISHED_COLOURS)]
    return PALETTE[_slot(key)]


def colours_for(keys, published=()) -> dict:
    """{key: colour} for the series of one figure (``published``: the recipe's published
    series' names): :func:`colour_of` each, except that a key whose colour an earlier key
    took gets the next free one."""
    published = list(published)
    out, used = {}, set(PUBLISHED_COLOURS)
    for key in [*published, *keys]:
        if key in out:
            continue
        if key in published:
            out[key] = colour_of(key, published)
            continue
        start = _slot(key)
        for i in range(len(PALETTE)):
            colour = PALETTE[(start + i) % len(PALETTE)]
            if colour not in used:
                break
        else:
            colour = PALETTE[start]          # more series than colours: share, as before
        out[key] = colour
        used.add(colour)
    return out


def batch_ticks(batch_sizes) -> list[int]:
    """Every power of two from the smallest batch size to the largest, and any other batch
    size drawn (3, 12, ...)."""
    sizes = sorted({int(b) for b in batch_sizes if b})
    if not sizes:
        return []
    ticks, p = set(sizes), 1
    while p <= sizes[-1]:
        if p >= sizes[0]:
            ticks.add(p)
        p *= 2
    return sorted(ticks)


def batch_axis(ax, batch_sizes) -> None:
    """A log2 x axis labelled with the batch sizes as numbers (1, 2, 4, ... 64)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter
    ax.set_xscale("log", base=2)
    ticks = batch_ticks(batch_sizes)
    if ticks:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        fmt = ScalarFormatter()
        fmt.set_scientific(False)
        ax.xaxis.set_major_formatter(fmt)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("batch size")


def series_groups(recs, prefix: str = "zoorepro ") -> dict:
    """``{series key: (legend label, [bench rows])}`` of ``records.BenchRow`` s, the label being
    ``prefix`` + the key (the report: "zoorepro ", a comparison: "<run>: ")."""
    out: dict = {}
    for r in recs:
        key = series_key(r)
        out.setdefault(key, (prefix + key, []))[1].append(r)
    return out


def plot_throughput(groups: dict, title: str, published: dict | None = None):
    """Throughput vs batch size: ``groups`` is ``{series key: (label, [records.BenchRow])}``
    (:func:`series_groups`; a bare list of records: the key is the label), with the recipe's
    ``published`` series (``{label: {batch size: img/s}}``, e.g.
    ``Recipe.throughput_labels()``) dashed; a point whose timing is not valid is marked with
    a cross, a point measured on a busy host with an open circle."""
    published = dict(published or {})
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4.6), dpi=100)
    ax = fig.subplots()
    groups = {k: (v if isinstance(v, tuple) else (k, v)) for k, v in groups.items()}
    colours = colours_for(list(groups), published)
    drawn = []
    for key, (label, recs) in groups.items():
        recs = sorted((r for r in recs if r.throughput), key=lambda r: r.batch_size)
        xs = [r.batch_size for r in recs]
        drawn += xs
        ax.plot(xs, [r.throughput for r in recs], "o-", color=colours[key], label=label[:80])
        for which, style in ((lambda r: not r.valid, dict(marker="x", markersize=10,
                                                         color=INVALID_COLOUR)),
                             (lambda r: r.busy, dict(marker="o", markersize=13,
                                                     markerfacecolor="none",
                                                     color=colours[key]))):
            odd = [r for r in recs if which(r)]
            if odd:
                ax.plot([r.batch_size for r in odd], [r.throughput for r in odd],
                        linestyle="none", **style)
    for label, series in published.items():
        bss = sorted(series)
        drawn += bss
        ax.plot(bss, [series[b] for b in bss], "--", alpha=0.6, color=colours[label],
                label=f"{label} (published)")
    every = [r for _, recs in groups.values() for r in recs if r.throughput]
    if any(not r.valid for r in every):     # what the marks mean, in the legend
        ax.plot([], [], "x", color=INVALID_COLOUR, markersize=10,
                label="timing not valid (spread too large)")
    if any(r.busy for r in every):
        ax.plot([], [], "o", color="#444444", markerfacecolor="none", markersize=13,
                label="measured on a busy host")
    batch_axis(ax, drawn)
    ax.set_yscale("log")
    ax.set_ylabel("images / s (inference call)")
    ax.set_title(title + ("" if groups else " — no bench records"))
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7)
    for text in (ax.title, *legend.get_texts()):
        text.set_parse_math(False)   # names of devices, runs and folders: literal, never mathtext
    fig.tight_layout()
    return fig
