"""The report's "Where accuracy goes" section: the precision ladder's rows (``records.ladder``)
as a table, and one sentence per step that the numbers support.

A sentence never claims more than its counts: each step is compared with row b image by
image, and a gain or loss is called one only when the images it fixed and broke differ
beyond chance (an exact two-sided sign test on fixed vs broken, :func:`sign_test`, at
:data:`ALPHA`); otherwise it says the difference is within what these images can tell.
"""
from __future__ import annotations

from math import comb

from zoorepro.report.core import RunData, fmt, render

ALPHA = 0.05
HEADERS = ["step", "what", "engine", "images", "Acc@1", "Acc@5", "Δ Acc@1 vs b",
           "top-1 agreement with b", "top-1 changed (fixed / broken)", "max |Δ logit| vs b",
           "img/s"]


def sign_test(fixed: int, broken: int) -> float:
    """Two-sided exact sign test p-value of ``fixed`` vs ``broken`` (1.0 when both are 0)."""
    n = fixed + broken
    if n == 0:
        return 1.0
    k = min(fixed, broken)
    p = 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, p)


def _delta(row, base) -> float | None:
    """Acc@1 of ``row`` minus row b's on the images both scored: (fixed - broken) / compared
    (exact: an image changed from one wrong class to another moves neither), so a row on
    fewer images (an NPU run of a subset) is compared on its own images."""
    if row.compared:
        return 100 * (row.fixed - row.broken) / row.compared
    if row.top1 is None or base is None or base.top1 is None:
        return None
    return row.top1 - base.top1


def _throughput(row) -> str:
    if row.throughput is None:
        return "—"
    shaky = row.throughput_validity not in (None, "ok")
    return (f"{row.throughput:,.1f} (bs {row.throughput_batch})"
            + (f" INVALID: {row.throughput_validity}" if shaky else ""))


def _g(value) -> str:
    return "—" if value is None else f"{value:.3g}"


def rows_of(rec) -> list[list]:
    base = rec.row(rec.base)
    out = []
    for r in rec.rows:
        if r.status != "ok":
            out.append([r.step, r.name, r.engine or "", "not run", "", "", "", "", "", "",
                        r.reason or ""])
            continue
        d = _delta(r, base)
        out.append([r.step, r.name, r.engine or "", r.images, fmt(r.top1, 2), fmt(r.top5, 2),
                    "—" if r.step == rec.base or d is None else f"{d:+.2f} pt",
                    "—" if r.step == rec.base else fmt(r.agreement_pct, 2, " %"),
                    "—" if r.step == rec.base else f"{r.changed} ({r.fixed} / {r.broken})",
                    "—" if r.step == rec.base else _g(r.max_abs_logit_delta),
                    _throughput(r)])
    return out


def _verdict(r) -> str:
    """What the fixed/broken counts support, in words."""
    net = r.fixed - r.broken
    if r.changed == 0:
        return "no image changes its top-1 class"
    p = sign_test(r.fixed, r.broken)
    counts = f"{r.fixed} fixed, {r.broken} broken, sign test p = {p:.2g}"
    if p < ALPHA:
        return (f"a real {'gain' if net > 0 else 'loss'} of {abs(net)} image(s) on these "
                f"images ({counts})")
    return (f"a net {net:+d} image(s), within what {r.compared} images can tell ({counts})")


SAYS = {
    "a": "The framework's own float pipeline against the recipe's uint8 + AIPP path",
    "c": "Rounding AIPP's output to fp16 (the device normalises into fp16)",
    "d": "Running the network in fp16, as ATC's force_fp16 does",
    "e": "int8 post-training quantization",
    "f": "The NPU itself",
}


def sentences(rec) -> list[str]:
    """One sentence per measured step (rows not run say why), each from its own counts."""
    base = rec.row(rec.base)
    out = []
    if base is not None and base.status == "ok" and base.top1 is not None and base.images:
        out.append(f"Row {base.step}, the recipe's fp32 path, scores Acc@1 {base.top1:.2f} % on "
                   f"{base.images} images: every other row is compared with it image by image "
                   f"(one image is {100 / base.images:.2g} pt here).")
    for r in rec.rows:
        if r.step == rec.base:
            continue
        what = SAYS.get(r.step, r.name)
        if r.status != "ok":
            out.append(f"{what} (row {r.step}) was not measured: {r.reason}.")
            continue
        d = _delta(r, base)
        if d is None or r.changed is None:
            out.append(f"{what} (row {r.step}): Acc@1 {fmt(r.top1)} %; no row b to compare "
                       f"with.")
            continue
        extra = ""
        if r.step == "e" and r.throughput and base and base.throughput:
            extra = (f"; it runs at {r.throughput / base.throughput:.2f}× row b's img/s at "
                     f"batch {r.throughput_batch}")
        out.append(f"{what} (row {r.step}) moves Acc@1 by {d:+.2f} pt: {_verdict(r)}; "
                   f"max |Δ logit| {_g(r.max_abs_logit_delta)}{extra}.")
    return out


def ladder_section(data: RunData) -> str:
    rec = data.ladder
    if rec is None:
        return render("report/ladder_section.html.j2", rec=None, reason="the run has no "
                      "ladder record (the ladder stage did not run)")
    if rec.status != "ok":
        return render("report/ladder_section.html.j2", rec=None, reason=rec.reason)
    hows = [(r.step, r.how) for r in rec.rows]
    examples = [(r.step, ", ".join(r.changed_examples)) for r in rec.rows
                if r.status == "ok" and r.changed_examples]
    q = data.quantize
    return render("report/ladder_section.html.j2", rec=rec, headers=HEADERS, rows=rows_of(rec),
                  sentences=sentences(rec), hows=hows, examples=examples, quantize=q,
                  timing=_timing(rec, q))


def _timing(rec, quantize) -> str | None:
    """Rows c-e's inference time beside the accuracy run's (the issue's budget: at most 2x)."""
    secs = [r.seconds for r in rec.rows if r.step in ("c", "d", "e") and r.seconds is not None]
    if not secs or not rec.accuracy_seconds:
        return None
    total = sum(secs)
    build = (f"; building the int8 model took {quantize.seconds:.1f} s, once per run"
             if quantize is not None and quantize.seconds else "")
    return (f"Rows c–e's inference over the {rec.images} images took {total:.2f} s together, "
            f"{total / rec.accuracy_seconds:.1f}× the accuracy run's "
            f"{rec.accuracy_seconds:.2f} s (images / its end-to-end img/s); loading each "
            f"model and timing its img/s point come on top{build}.")
