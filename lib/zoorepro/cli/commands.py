"""The commands of ``zoorepro`` (see :mod:`zoorepro.cli`): one ``cmd_<name>(args)`` each,
returning the exit code; each calls the same library functions as the notebooks."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from zoorepro import config
from zoorepro.errors import ZooreproError

log = logging.getLogger("zoorepro.cli")


def _overrides(pairs) -> dict:
    return dict(config.parse_override(k, v) for k, v in (pairs or []))


def _refresh_index(output_root) -> None:
    """The output root's index.html after a command's own work: a damaged other run is listed
    as damaged there; an index that cannot be written is a warning, never this command's
    failure (the run is done and its folder is printed)."""
    from zoorepro.report import index
    try:
        index.refresh(output_root)
    except (ZooreproError, OSError) as exc:
        log.warning(f"warning: {Path(output_root) / 'index.html'} not updated: {exc}")


def cmd_run(args) -> int:
    from zoorepro import runner
    from zoorepro.run.folder import Run
    if args.resume:
        if args.params or args.param:
            raise config.ConfigError("--resume continues a run with its own params.yaml; give "
                                     "no PARAMS and no -p")
        outcome = runner.run_all(resume=Run.open(Path(args.resume).resolve()),
                                 kernel=args.kernel, progress=not args.quiet)
    else:
        if not args.params:
            raise config.ConfigError("give a params file (e.g. params/demo.yaml) or --resume RUN")
        cfg = config.load(args.params, _overrides(args.param))
        outcome = runner.run_all(cfg, kernel=args.kernel, progress=not args.quiet)
    _refresh_index(outcome.run_dir.parent)
    if outcome.report:
        log.info(f"report: {outcome.report}")
    if not outcome.ok:
        f = outcome.failure
        print(f"error: notebook {f['notebook']} failed at cell {f['cell']}: {f['error']}\n"
              f"The executed notebook is kept in {outcome.run_dir / 'notebooks'}; "
              f"report.html shows what did run; continue with: zoorepro run --resume "
              f"{outcome.run_dir}", file=sys.stderr)
    print(outcome.run_dir)
    return 0 if outcome.ok else 1


def cmd_render(args) -> int:
    from zoorepro import runner
    from zoorepro.run.folder import Run
    run = Run.open(Path(args.run_dir).resolve())    # absolute: notebooks run in notebooks/
    if run.origin == "compared":
        raise config.ConfigError(f"{run.root}: a comparison of runs, not a run; its page is "
                                 f"{run.root / 'report.html'}")
    if run.finished:
        raise config.ConfigError(f"{run.root}: a finished run already has its report.html; "
                                 f"finished runs are never modified")
    t0 = time.perf_counter()
    outcome = runner.render_report(run, args.kernel, progress=not args.quiet)
    log.info(f"report written in {time.perf_counter() - t0:.1f} s")
    _refresh_index(run.root.parent)
    if outcome.report:
        print(f"report: {outcome.report}")
    print(run.root)
    return 0 if outcome.ok else 1


def cmd_bench(args) -> int:
    from zoorepro.run import stages
    from zoorepro.run.folder import Run
    run = Run.create(config.load(args.params, _overrides(args.param)))
    records, skipped = stages.run_bench(run)
    for name, st in skipped.items():
        log.warning(f"note: backend {name} not run: {st.reason}")
    published = run.recipe.published.throughput
    chip = next(iter(published), None)          # the recipe's first chip, e.g. Ascend310P3
    p3 = published[chip] if chip else {}
    short = (chip or "NPU").removeprefix("Ascend")
    cols = ("backend", "precision", "timing", "batch_size", "throughput", "e2e_throughput",
            "median_ms", "p90_ms", "p99_ms", "h2d_mean_ms", "d2h_mean_ms", "iterations", "validity")
    print(" | ".join(cols + (f"{short} img/s", f"vs {short}")))
    for r in records:
        cells = [f"{r.get(c):.2f}" if isinstance(r.get(c), float) else str(r.get(c)) for c in cols]
        bs, ours = r.get("batch_size"), r.get("throughput")
        if bs in p3 and ours and (r.get("timing") == "device"):
            cells += [f"{p3[bs]:.1f}", f"{ours / p3[bs]:.3f}x"]
        else:
            cells += [f"{p3[bs]:.1f}" if bs in p3 else "-", "-"]
        print(" | ".join(cells))
    path = run.record_path("bench")
    print(f"records: {path} and {path.with_suffix('.csv')}")
    print(run.root)
    return 0


def cmd_recipes(args) -> int:
    from zoorepro import recipebook
    if args.recipe:
        r = recipebook.load(args.recipe)
        info = recipebook.summary(r)
        rows = [("recipe", f"{r.name}: {r.title} ({r.kind})"), ("source", r.source),
                ("folder", r.folder), ("recipe.yaml sha256", r.sha256),
                ("model", f"{r.model.builder}, {r.model.parameters:,} parameters, "
                          f"{r.model.input} -> {r.model.output}, {r.model.batch} batch "
                          f"({r.model.export_batch}), opset {r.model.opset}"),
                ("preprocess", f"{r.preprocess.decoder}, {r.preprocess.layout}, shorter side "
                               f"{r.preprocess.resize} {r.preprocess.interpolation}, centre "
                               f"crop {r.preprocess.crop} ({r.preprocess.bin_bytes:,}-byte .bin)"),
                ("AIPP", r.aipp), ("weights", r.weights.hint),
                ("published", "; ".join(f"{c}: {a[0]} / {a[1]}"
                                        for c, a in r.published.accuracy.items())
                 or "none (no NPU has run this recipe)"),
                ("reference", f"{r.reference.label}: Acc@1 {r.reference.top1}, Acc@5 "
                              f"{r.reference.top5 or 'not published'} ({r.reference.source})"),
                ("needs", "; ".join(info["needs"]) or "nothing more")]
        rows += [("ATC", f"atc {' '.join(r.atc.argv)}"),
                 ("ais_bench accuracy", f"python3 -m ais_bench {' '.join(r.ais_bench.accuracy)}"),
                 ("ais_bench perf", f"python3 -m ais_bench {' '.join(r.ais_bench.perf)}"),
                 ("scoring", f"{r.scoring.script or 'zoorepro'} -> {r.scoring.result_file}")]
        rows += [("note", n) for n in r.notes]
        for k, v in rows:
            print(f"{k:20} {v}")
        from zoorepro.recipe import check
        check.check(r)         # its code and AIPP config, as a run uses them (exit 2 if not)
        print(f"{'checked':20} builder, parameter count and AIPP config: ok")
        return 0
    for name in recipebook.names():
        info = recipebook.summary(recipebook.load(name))
        default = " (default)" if name == recipebook.DEFAULT else ""
        print(f"{name}{default}: {info['title']}, {info['kind']}: {info['source']}")
        print(f"    needs: {'; '.join(info['needs']) or 'nothing more'}")
    print("a recipe of your own: give its folder (holding recipe.yaml) as 'recipe' in the "
          "params; see README, 'Recipes'")
    return 0


def cmd_labels(args) -> int:
    from zoorepro.recipe import data
    labels = data.official_val_labels()
    path = data.write_labels(labels, args.official)
    print(f"wrote {len(labels)} labels to {path}")
    return 0


def cmd_convert_weights(args) -> int:
    from zoorepro import recipebook
    from zoorepro.errors import RecipeError
    from zoorepro.recipe import data
    recipe = recipebook.load(args.recipe)
    hook = recipe.weights.demo.convert if recipe.weights.demo else ""
    if not hook:
        raise RecipeError(f"{recipe.path}: recipe {recipe.name} has no weights.demo.convert "
                          f"hook, so convert-weights has nothing to run; give weights as a "
                          f"state_dict .pth ({recipe.weights.hint}), or name a recipe that "
                          f"converts its demo weights (--recipe)")
    convert = recipebook.resolve(recipe, hook, "weights.demo.convert")
    out = convert(recipe, args.source, args.dest)
    print(f"wrote {out} (sha256 {data.sha256_file(out)})")
    return 0


def cmd_lab(args) -> int:
    """JupyterLab on the user's notebooks, as this very process (zoorepro.lab): every other
    option goes to JupyterLab as it is."""
    from zoorepro import lab
    lab.start(lab.plan(args.extra))
    return 0      # not reached: this process is JupyterLab now


def cmd_index(args) -> int:
    from zoorepro.report import index
    path = index.refresh(args.output_root)
    print(path)
    return 0


def cmd_ingest(args) -> int:
    from zoorepro.ascend import ingest
    from zoorepro import runner
    run = ingest.ingest(args.result_dir, args.labels, args.out, summaries=args.summary or (),
                        npu_smi_file=args.npu_smi, cann_version=args.cann_version,
                        soc_version=args.soc_version, manifest=args.manifest,
                        accuracy_summary=args.accuracy_summary, name=args.name,
                        recipe=args.recipe, ladder_from=args.ladder_from)
    if not args.no_report:
        runner.render_report(run, args.kernel, progress=not args.quiet)
    _refresh_index(run.root.parent)
    run_dir = run.root
    failure = run_dir / "records" / "failure.json"
    if (run_dir / "report.html").is_file():
        print(f"report: {run_dir / 'report.html'}")
    if failure.is_file():
        print(f"error: the report notebook failed; see {failure} and {run_dir / 'notebooks'}",
              file=sys.stderr)
    print(run_dir)
    return 1 if failure.is_file() else 0


def cmd_kit(args) -> int:
    from zoorepro.ascend import kit
    cfg = config.load(args.params, _overrides(args.param), check_paths=False)
    script = kit.make_kit(cfg, args.out_dir, bins=not args.no_bins, params_source=str(args.params),
                          progress=not args.quiet)
    print(f"wrote the kit to {script.parent}; copy that folder to the NPU host and run:\n"
          f"  bash {script.name}")
    return 0


def cmd_compare(args) -> int:
    from zoorepro.report import compare
    folder = compare.compare(args.run_dirs, args.out)
    log.info(f"report: {folder / 'report.html'}")
    print(folder)
    return 0
