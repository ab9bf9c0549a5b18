"""A run as an object: create/open, config, origin, the only reader and writer of records."""
import json
import os
import signal

import pytest

from zoorepro import config
from zoorepro.run import records
from zoorepro.errors import DataError, RecordError
from zoorepro.run.folder import Run

from conftest import small_params


def test_create_writes_params_and_environment_once(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path))
    run = Run.create(cfg)
    assert run.origin == "run" and run.config.run_dir == str(run.root)
    assert (run / "params.yaml").is_file() and run.has(records.EnvironmentRecord)
    again = Run.create(run.config)             # continuing the same folder
    assert again == run and again.config.name == cfg.name


def test_open_reads_the_config_back_and_typed_records(tmp_path):
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    run.write(records.AtcRecord(status="not run", soc_version=None, commands=[], reason="x"))
    opened = Run.open(run.root)
    assert opened.config.batch_sizes == (1, 4) or list(opened.config.batch_sizes) == [1, 4]
    assert opened.read(records.AtcRecord).reason == "x"
    assert opened.read("atc") == opened.read(records.AtcRecord)
    assert "schema_version" not in opened.read("atc").data()
    assert opened.all_records()["atc"] == opened.read(records.AtcRecord)


def test_a_damaged_record_names_the_file(tmp_path):
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    run.record_path("atc").write_text("{not json")
    with pytest.raises(RecordError, match=r"records/atc.json: not valid JSON"):
        run.read("atc")
    run.record_path("atc").write_text(json.dumps({"status": "ok", "soc_version": None,
                                                  "commands": [], "modles": []}))
    with pytest.raises(RecordError, match=r"records/atc.json: unknown key\(s\) modles"):
        run.read("atc")
    with pytest.raises(RecordError, match="not written yet"):
        run.read(records.DatasetRecord)


def test_bench_record_writes_its_csv_beside_it(tmp_path):
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    row = dict(backend="onnxruntime", device="cpu", batch_size=1, iterations=2, throughput=5.0,
               throughput_definition="d", valid=True, validity="ok")
    run.write(records.BenchRecord(definition="d", records=[row]))
    csv = (run.records_dir / "bench.csv").read_text()
    assert csv.splitlines()[1].startswith("onnxruntime,cpu,1,2")


def test_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(DataError, match="not a zoorepro run folder"):
        Run.open(tmp_path)


def test_an_ingested_run_has_no_config(tmp_path):
    run = Run.create_ingested(tmp_path, "npu")
    run.write(records.IngestRecord(source="s", result_dir="r", labels="l", device="npu"))
    assert Run.open(run.root).origin == "ingested" and Run.open(run.root).config is None


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_params_yaml_records_the_parameters_not_the_folder(tmp_path):
    import yaml
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    saved = yaml.safe_load((run / "params.yaml").read_text())
    assert "run_dir" not in saved
    again = Run.create(config.load(run / "params.yaml"))        # rerunning it: a new run
    assert again.root != run.root and again.root.parent == run.root.parent


def test_a_finished_run_is_never_modified(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path))
    run = Run.create(cfg)
    (run / "report.html").write_text("<html>done</html>")       # what finishing leaves
    assert run.finished
    before = _snapshot(run.root)
    with pytest.raises(DataError, match="a finished run .* never modified"):
        Run.create(cfg.replace(run_dir=str(run.root)))
    with pytest.raises(DataError, match="a finished run"):
        from zoorepro import runner
        runner.run_all(resume=run)
    assert _snapshot(run.root) == before


def test_an_unfinished_run_continues_only_with_its_own_parameters(tmp_path):
    cfg = config.from_mapping(small_params(tmp_path))
    run = Run.create(cfg)
    assert not run.finished
    assert Run.create(cfg.replace(run_dir=str(run.root))) == run
    with pytest.raises(DataError, match=r"other parameters \(max_images\).*--resume"):
        Run.create(cfg.replace(run_dir=str(run.root), max_images=3))


def test_a_record_is_checked_before_it_is_written(tmp_path):
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    bad = records.AccuracyRecord({"onnxruntime": records.AccuracyEntry(
        status="ok", images=10, top1=1e308, top5=99.0)})
    with pytest.raises(RecordError, match=r"records/accuracy.json \[onnxruntime\]: cannot be "
                                          r"written: top1 = 1e\+308 is not a percentage"):
        run.write(bad)
    assert not run.has(records.AccuracyRecord)
    row = dict(backend="onnxruntime", device="cpu", batch_size=1, iterations=2, throughput=5.0,
               throughput_definition="d", valid=True, validity="ok")
    bench = records.BenchRecord(definition="d", records=[row])
    bench.records[0].throughput = float("inf")             # changed after it was built
    with pytest.raises(RecordError, match=r"bench.json \[0\]: cannot be written: throughput"):
        run.write(bench)
    assert not run.has(records.BenchRecord) and not (run.records_dir / "bench.csv").exists()


def test_a_huge_record_is_refused_before_it_is_read(tmp_path, monkeypatch):
    """A 3 GB record was read whole (and then failed) by every later command."""
    from zoorepro.run import recordcheck, folder as run_mod
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    run.write(records.AtcRecord(status="not run", soc_version=None, commands=[], reason="x"))
    monkeypatch.setattr(run_mod, "RECORD_MAX_BYTES", 100)
    monkeypatch.setattr(run_mod, "read_json", lambda p: pytest.fail("read a huge record"))
    with pytest.raises(RecordError, match=r"records/atc.json: \d+ bytes, more than a record "
                                          r"ever holds \(100\).*damaged"):
        run.read("atc")
    assert recordcheck.RECORD_MAX_BYTES == 64 * 2**20


@pytest.mark.parametrize("text,match", [("[1, 2]", "expected a mapping"),
                                        ("a: [1\n", "not readable YAML"),
                                        ("x" * (2 << 20), "more than a params file")])
def test_a_damaged_params_yaml_is_a_zoorepro_error(tmp_path, text, match):
    from zoorepro.errors import ZooreproError
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    (run / "params.yaml").write_text(text)
    with pytest.raises(ZooreproError, match=match):
        assert Run.open(run.root).config is None


def _not_a_file(path, what):
    """``path`` made a folder, a FIFO or a broken link instead of a record file."""
    if what == "folder":
        path.mkdir()
    elif what == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(path.parent / "gone.json")


@pytest.fixture
def no_blocking():
    """Fails (instead of hanging) a test whose code blocks opening a FIFO."""
    def alarm(*_):
        raise TimeoutError("blocked: a FIFO was opened")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("what,match", [("folder", "a folder, not a regular file"),
                                        ("fifo", "a FIFO, not a regular file"),
                                        ("broken", r"a link to .*gone.json, which does not")])
def test_a_record_that_is_not_a_regular_file_is_damage(tmp_path, no_blocking, what, match):
    """An accuracy.json that was a folder or a FIFO was 'not written yet' (has() said no),
    and a FIFO would block whoever opened it."""
    run = Run.create(config.from_mapping(small_params(tmp_path)))
    path = run.record_path(records.AccuracyRecord)
    _not_a_file(path, what)
    assert run.has(records.AccuracyRecord)           # there, if damaged: not "to be run"
    with pytest.raises(RecordError, match=rf"records/accuracy.json: {match}.*damaged"):
        run.read(records.AccuracyRecord)


def _records_as(root, what):
    """A folder whose records/ is not a real folder."""
    root.mkdir(parents=True, exist_ok=True)
    rec = root / "records"
    if what == "loop":
        rec.symlink_to("records")
    elif what == "self":
        rec.symlink_to(".")
    elif what == "broken":
        rec.symlink_to("gone")
    elif what == "link":
        (root.parent / "elsewhere").mkdir()
        rec.symlink_to(root.parent / "elsewhere")
    else:
        rec.write_text("{}")
    return rec


@pytest.mark.parametrize("what,match", [
    ("loop", "a link that loops"), ("self", r"a link \(to \.\)"),
    ("broken", r"a link to gone, which does not exist"),
    ("link", r"a link \(to .*elsewhere\)"), ("file", "a file")])
def test_open_refuses_a_records_that_is_not_a_real_folder(tmp_path, what, match):
    """`zoorepro render` on a folder whose records was a link to itself wrote notebooks/,
    failure.json and report.html into a folder that is not a run."""
    from zoorepro import cli
    root = tmp_path / "r"
    rec = _records_as(root, what)
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(DataError, match=rf"{rec}: {match}.*not a folder"):
        Run.open(root)
    assert cli.main(["render", str(root)]) == 2
    assert sorted(p.name for p in root.iterdir()) == before
    cfg = config.from_mapping(small_params(tmp_path, run_dir=str(root)))
    with pytest.raises(DataError, match=rf"{rec}: {match}"):
        Run.create(cfg)
    assert sorted(p.name for p in root.iterdir()) == before


def test_a_run_named_like_a_number_reads_back_as_its_name(tmp_path):
    """params.yaml is written so that YAML 1.2 reads every string back as a string."""
    from zoorepro import config
    from zoorepro.run.folder import Run
    from conftest import small_params
    run = Run.create(config.from_mapping(small_params(tmp_path, name="1e3")))
    assert Run.open(run.root).config.name == "1e3"
