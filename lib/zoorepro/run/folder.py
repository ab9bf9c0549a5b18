"""A run: one folder, its config (none for ingested results), its typed records, its origin.

    run = Run.create(cfg)          # a new folder under cfg.output_root (or cfg.run_dir)
    run = Run.open(path)           # an existing folder, e.g. for the report or compare
    run.write(records.DatasetRecord(...))
    ds = run.read(records.DatasetRecord)

Records are written and read only here (through :mod:`zoorepro.run.records`); the report and
``compare`` take Runs.  Layout (unchanged)::

    <run>/params.yaml  report.html  result.json  metrics.json
         records/<name>.json  bench.csv     notebooks/  bin/  model/  results/<backend>/
         recipe/<name>/ (a copy of the recipe folder)
"""
from __future__ import annotations

import datetime as _dt
import os
import stat as _stat
from pathlib import Path

import yaml

from zoorepro.run import provenance, records
from zoorepro.config import MAXIMA, RunConfig, from_mapping
from zoorepro.errors import ConfigError, DataError, RecordError
from zoorepro.files import atomic_write_json, atomic_write_text, dump_yaml, load_yaml, read_json
from zoorepro.run.recordcheck import RECORD_MAX_BYTES, show

ORIGINS = ("run", "ingested", "compared")
RECIPE_DIR = "recipe"      # <run>/recipe/<name>/: the copy of the recipe the run followed


def new_run_dir(output_root: str | os.PathLike, name: str) -> Path:
    """A fresh folder ``<output_root>/<name>-<YYYYmmdd-HHMMSS>[-k]``; never reuses one."""
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        cand = root / (f"{name}-{stamp}" + (f"-{k}" if k else ""))
        try:
            cand.mkdir()
            return cand
        except FileExistsError:
            continue
    raise DataError(f"{root}: could not make a new run folder (1000 of them this second)")


class Run:
    def __init__(self, root: str | os.PathLike, config: RunConfig | None = None):
        self.root = Path(root)
        self._config = config

    def __repr__(self) -> str:
        return f"Run({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and self.root == other.root

    def __hash__(self) -> int:
        return hash(self.root)

    def __truediv__(self, name) -> Path:      # run / "report.html", as with a Path
        return self.root / name

    def __fspath__(self) -> str:
        return str(self.root)

    # --------------------------------------------------------------- create
    @classmethod
    def create(cls, cfg: RunConfig) -> "Run":
        """The run folder of ``cfg`` (a new one when ``run_dir`` is empty): checked writable,
        ``params.yaml`` and the environment record written once."""
        if cfg.run_dir and Path(cfg.run_dir).is_dir():
            if os.path.lexists(Path(cfg.run_dir) / "records"):
                check_records_dir(Path(cfg.run_dir))
            existing = cls(cfg.run_dir)
            if existing.finished:
                raise DataError(
                    f"{cfg.run_dir}: a finished run (report.html, no failure); finished runs are "
                    f"never modified. Leave run_dir empty for a new run (its params.yaml makes "
                    f"one: zoorepro run {Path(cfg.run_dir) / 'params.yaml'})")
            if existing.origin != "run":
                raise DataError(f"{cfg.run_dir}: results {existing.origin} here, not a run to "
                                f"continue; leave run_dir empty for a new run")
            before = existing.config
            if before is not None:
                differ = [k for k, v in cfg.to_dict().items()
                          if k not in ("run_dir", "output_root") and before.to_dict().get(k) != v]
                if differ:
                    raise DataError(
                        f"{cfg.run_dir}: this unfinished run was made with other parameters "
                        f"({', '.join(differ)}); continue it with its own params.yaml "
                        f"(zoorepro run --resume {cfg.run_dir}) or leave run_dir empty for a "
                        f"new run")
        try:
            if cfg.run_dir:
                root = Path(cfg.run_dir)
                root.mkdir(parents=True, exist_ok=True)
            else:
                root = new_run_dir(cfg.output_root, cfg.name)
                cfg = cfg.replace(run_dir=str(root))
            probe = root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            where = cfg.run_dir or cfg.output_root
            raise DataError(f"{where}: cannot create or write the run folder "
                            f"({exc.strerror or exc}); set output_root to a writable "
                            f"folder") from None
        run = cls(root, cfg)
        run.records_dir.mkdir(exist_ok=True)
        if not (root / "params.yaml").exists():     # the parameters, not where they ran
            params = {k: v for k, v in cfg.to_dict().items() if k != "run_dir"}
            atomic_write_text(root / "params.yaml", dump_yaml(params))
        if not run.has(records.EnvironmentRecord):
            run.write(records.EnvironmentRecord(**provenance.environment()))
        run.keep_recipe(cfg.recipe_spec)
        return run

    def keep_recipe(self, recipe) -> None:
        """Copy ``recipe`` (a :class:`zoorepro.recipebook.Recipe`) into the run folder and
        record it, once; a run continued with a changed recipe file is refused."""
        from zoorepro import recipebook
        if self.has(records.RecipeRecord):
            self.check_recipe(recipe)
            return
        files = recipebook.copy_folder(recipe, self.root / RECIPE_DIR)
        self.write(records.RecipeRecord(
            name=recipe.name, title=recipe.title, kind=recipe.kind, source=recipe.source,
            folder=recipe.folder, sha256=recipe.sha256,
            copy=f"{RECIPE_DIR}/{recipe.name}", files=files))

    def check_recipe(self, recipe=None) -> None:
        """Work still to do in this run follows the recipe it began with: ``recipe`` (default:
        the one its config names, as the file is now) must be the one it kept, or a
        :class:`DataError` says the recipe changed.  A run that keeps none is not checked."""
        if not self.has(records.RecipeRecord) or (recipe is None and self.config is None):
            return
        recipe = recipe or self.config.recipe_spec
        kept = self.read(records.RecipeRecord)
        if kept.sha256 != recipe.sha256:
            raise DataError(f"{recipe.path}: changed since this run began (sha256 "
                            f"{recipe.sha256[:12]}..., the run keeps {kept.sha256[:12]}... in "
                            f"{self.root / kept.copy}); a run follows one recipe: leave "
                            f"run_dir empty (or rerun its params.yaml) for a new run with the "
                            f"recipe as it is now, or put the kept copy back")

    @property
    def recipe(self):
        """The recipe this run followed, read from its copy in the run folder (checked against
        the record's sha256); None when the run keeps none."""
        from zoorepro import recipebook
        if not self.has(records.RecipeRecord):
            return None
        kept = self.read(records.RecipeRecord)
        copy = self.root / kept.copy
        if not (copy / recipebook.RECIPE_FILE).is_file():
            raise RecordError(f"{copy / recipebook.RECIPE_FILE}: records/recipe.json says the "
                              f"run kept its recipe here, but it is missing; the run folder is "
                              f"incomplete: copy the whole folder again, or make a new run")
        recipe = recipebook.load(str(copy))
        if recipe.sha256 != kept.sha256:
            raise RecordError(f"{self.root / kept.copy}: the recipe copy differs from "
                              f"records/recipe.json (sha256 {recipe.sha256[:12]} vs "
                              f"{kept.sha256[:12]}); the run folder was modified: make a new run")
        return recipe

    @classmethod
    def create_ingested(cls, output_root: str | os.PathLike, name: str) -> "Run":
        root = new_run_dir(output_root, name)
        run = cls(root)
        run.records_dir.mkdir(exist_ok=True)
        return run

    @classmethod
    def open(cls, root: str | os.PathLike) -> "Run":
        root = Path(root)
        check_records_dir(root)
        return cls(root)

    # --------------------------------------------------------------- facts
    @property
    def origin(self) -> str:
        if self.has(records.IngestRecord):
            return "ingested"
        if (self.root / "compare.json").is_file():
            return "compared"
        return "run"

    @property
    def finished(self) -> bool:
        """Its report was rendered after every stage ran: never to be modified again."""
        return (self.origin == "run" and (self.root / "report.html").is_file()
                and not self.has(records.FailureRecord))

    @property
    def config(self) -> RunConfig | None:
        """The frozen config the run was made with; None for ingested results."""
        if self._config is None and self.origin == "run":
            params = self.root / "params.yaml"
            if params.is_file():
                raw = _read_params(params)
                raw["run_dir"] = str(self.root)
                self._config = from_mapping(raw, source=str(params), check_paths=False)
        return self._config

    @property
    def records_dir(self) -> Path:
        return self.root / "records"

    @property
    def models(self) -> Path:
        return self.root / "model"

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def bin_dir(self) -> Path:
        cfg = self.config
        return Path(cfg.bin_dir) if cfg and cfg.bin_dir else self.root / "bin"

    def params_text(self) -> str | None:
        p = self.root / "params.yaml"
        if not p.is_file():
            return None
        _check_size(p, MAXIMA["file"], "a params file")
        return p.read_text(encoding="utf-8", errors="replace")

    # ------------------------------------------------------------- records
    def record_path(self, kind) -> Path:
        return self.records_dir / f"{_name(kind)}.json"

    def has(self, kind) -> bool:
        """Whether the record is there: written, or damaged (a folder, a FIFO, a broken
        link in its place; :meth:`read` says which), never to be written over as missing."""
        return os.path.lexists(self.record_path(kind))

    def read(self, kind):
        """The typed record ``kind`` (a records class or its name)."""
        cls = kind if isinstance(kind, type) else records.ALL[_name(kind)]
        path = self.record_path(cls)
        check_record_file(path, cls.NAME)
        try:
            obj = read_json(path)
        except (ValueError, RecursionError) as exc:
            raise RecordError(f"{path}: not valid JSON ({str(exc)[:200]}); the run folder is "
                              f"damaged: make a new run, or move this folder out of the "
                              f"output root") from None
        return cls.from_json(obj, str(path))

    def write(self, record: records.Record) -> Path:
        """Write ``record`` after checking every value (a RecordError, nothing written)."""
        path = self.record_path(type(record))
        record.check(str(path), writing=True)
        self.records_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(record, records.BenchRecord):   # the csv first: the record says done
            atomic_write_text(path.with_suffix(".csv"), record.csv_text(self._identity()))
        return atomic_write_json(path, record.to_json())

    def _identity(self) -> dict:
        """What identifies this run's figures in a table of many runs."""
        out = {"run": self.root.name}
        if self.has(records.ExportRecord):
            exp = self.read(records.ExportRecord)
            out.update(weights_sha256=exp.weights_sha256, onnx_sha256=exp.onnx_sha256)
        if self.has(records.DatasetRecord):
            out["image_list_sha256"] = self.read(records.DatasetRecord).image_list_sha256
        return out

    def all_records(self) -> dict:
        """Every record present, typed and checked by its class, by name."""
        return {name: self.read(name) for name in records.ALL if self.has(name)}


def _name(kind) -> str:
    return kind if isinstance(kind, str) else kind.NAME


_DAMAGED = "the run folder is damaged: make a new run, or move this folder out of the output root"
_KINDS = ((_stat.S_ISDIR, "a folder"), (_stat.S_ISFIFO, "a FIFO"), (_stat.S_ISSOCK, "a socket"),
          (_stat.S_ISCHR, "a character device"), (_stat.S_ISBLK, "a block device"))


def check_records_dir(root: Path) -> None:
    """Refuse ``root`` unless its ``records`` is a real folder (not a link, even to a folder:
    one to ``.`` made the run folder its own records/), before anything is written there."""
    rec = root / "records"
    try:
        mode = os.lstat(rec).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(f"{root}: not a zoorepro run folder (no records/); give a folder "
                        f"that 'zoorepro run' or 'zoorepro ingest' wrote") from None
    except OSError as exc:
        raise DataError(f"{rec}: cannot be looked at ({exc.strerror or exc}); give a folder "
                        f"that 'zoorepro run' or 'zoorepro ingest' wrote") from None
    if _stat.S_ISDIR(mode):
        return
    if _stat.S_ISLNK(mode):
        target = os.readlink(rec)
        try:
            os.stat(rec)
            what = f"a link (to {target})"
        except FileNotFoundError:
            what = f"a link to {target}, which does not exist"
        except OSError:                 # ELOOP: records -> records
            what = f"a link that loops (to {target})"
    else:
        what = "a file" if _stat.S_ISREG(mode) else next(
            (w for test, w in _KINDS if test(mode)), "an odd kind of file")
    raise DataError(f"{rec}: {what}, not a folder: a run's records/ is the real folder "
                    f"zoorepro made, never a link; nothing was written. Give a folder that "
                    f"'zoorepro run' or 'zoorepro ingest' wrote, or move this one out of the "
                    f"output root")


def check_record_file(path: Path, name: str = "") -> None:
    """Refuse a record that is not a regular file of a sane size, from ``os.stat`` alone:
    nothing is opened (a FIFO would block its reader)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise RecordError(f"{path}: a link to {os.readlink(path)}, which does not exist; "
                              f"{_DAMAGED}") from None
        raise RecordError(f"{path}: not written yet; run the stage that writes "
                          f"'{name or path.stem}' first") from None
    except OSError as exc:              # a link loop, no permission, a file as records/
        raise RecordError(f"{path}: cannot be read ({exc.strerror or exc}); "
                          f"{_DAMAGED}") from None
    if not _stat.S_ISREG(st.st_mode):
        kind = next((what for test, what in _KINDS if test(st.st_mode)), "an odd kind of file")
        raise RecordError(f"{path}: {kind}, not a regular file: a record is a JSON file; "
                          f"{_DAMAGED}")
    _check_size(path, RECORD_MAX_BYTES, "a record", st.st_size)


def _check_size(path: Path, limit: int, what: str, size: int | None = None) -> None:
    """Refuse ``path`` before reading it when it is larger than ``what`` ever is."""
    size = path.stat().st_size if size is None else size
    if size > limit:
        raise RecordError(f"{path}: {size:,} bytes, more than {what} ever holds "
                          f"({limit:,}); the run folder is damaged: make a new run, or move "
                          f"this folder out of the output root")


def _read_params(path: Path) -> dict:
    """A run's ``params.yaml`` as a mapping (size checked first, no YAML aliases)."""
    _check_size(path, MAXIMA["file"], "a params file")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not readable YAML ({str(exc)[:200]}); the run folder is "
                          f"damaged: make a new run") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of parameters, got {show(raw)}; the "
                          f"run folder is damaged: make a new run")
    return raw
