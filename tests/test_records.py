"""Typed records: a mistyped field fails where it is written, an unknown or missing key where
it is read; records of runs written before schema_version still read."""
import dataclasses
import re

import pytest

from zoorepro.run import records
from zoorepro.errors import RecordError

ATC = {"status": "not run", "soc_version": None, "commands": ["atc ..."], "reason": "no atc"}


def test_a_mistyped_field_fails_where_it_is_written():
    with pytest.raises(TypeError, match="staus"):
        records.AtcRecord(staus="ok", soc_version=None, commands=[])
    with pytest.raises(TypeError):
        records.InferEntry(status="ok", throughput=1.0)


def test_round_trip_keeps_todays_keys_plus_schema_version():
    rec = records.AtcRecord.from_json(ATC)
    out = rec.to_json()
    assert out == {**ATC, "schema_version": records.SCHEMA_VERSION}   # models left out: None
    assert records.AtcRecord.from_json(out) == rec


@pytest.mark.parametrize("obj,match", [
    ({**ATC, "comands": []}, r"unknown key\(s\) comands .*known: commands"),
    ({k: v for k, v in ATC.items() if k != "commands"}, r"missing key\(s\) commands"),
    ({**ATC, "schema_version": 99}, r"schema_version 99 found, supported: 0, 1.*newer than"),
    ({**ATC, "schema_version": -1}, r"schema_version -1 found, supported: 0, 1"),
    ({**ATC, "schema_version": "1"}, r"schema_version '1' found, supported: 0, 1"),
    ([1, 2], "expected a JSON object"),
])
def test_reading_checks_every_key(obj, match):
    with pytest.raises(RecordError, match=match):
        records.AtcRecord.from_json(obj, "run/records/atc.json")


def test_per_backend_records_check_each_entry():
    ok = {"onnxruntime": {"status": "ok", "device": "cpu", "top1": 50.0},
          "ais_bench": {"status": "not run", "reason": "not installed"}}
    rec = records.AccuracyRecord.from_json({**ok, "schema_version": 1})
    assert rec.entries["onnxruntime"].top1 == 50.0 and rec.entries["ais_bench"].top1 is None
    assert rec.to_json()["ais_bench"] == {"status": "not run", "reason": "not installed"}
    with pytest.raises(RecordError, match=r"\[onnxruntime\].*unknown key\(s\) top_1"):
        records.AccuracyRecord.from_json({"onnxruntime": {"status": "ok", "top_1": 50.0}})


def test_bench_rows_are_checked_and_csv_has_the_fixed_columns():
    row = {f.name: 1 for f in dataclasses.fields(records.BenchRow)}
    row.update({f.name: "x" for f in dataclasses.fields(records.BenchRow)
                if f.type.startswith("str")})
    row.update(backend="onnxruntime", device="cpu", valid=True, validity="ok", busy=False)
    rec = records.BenchRecord(definition="d", records=[row])
    assert rec.csv_text().splitlines()[0].split(",") == list(records.BENCH_CSV_FIELDS
                                                             + records.BENCH_CSV_RUN_FIELDS)
    with pytest.raises(RecordError, match=r"bench.json \[0\].*unknown key\(s\) thruput"):
        records.BenchRecord(definition="d", records=[{**row, "thruput": 3}])


def test_bench_rows_carry_the_host_load_and_older_rows_still_read():
    old = dict(backend="onnxruntime", device="cpu", batch_size=1, iterations=2, throughput=5.0,
               throughput_definition="d", valid=True, validity="ok")
    rec = records.BenchRecord.from_json({"definition": "d", "records": [old]})
    rec.check(writing=True)        # written from now on: every host-load key, null if unknown
    assert {k: rec.to_json()["records"][0][k] for k in ("busy", "others_cpu_share")} == {
        "busy": None, "others_cpu_share": None}
    load = dict(load_before=11.2, load_after=10.8, others_cpu_share=0.43, host_cores=8,
                busy=True)
    rec = records.BenchRecord.from_json({"definition": "d", "records": [{**old, **load}]})
    assert {k: getattr(rec.records[0], k) for k in load} == load
    assert isinstance(rec.records[0], records.BenchRow)
    csv_row = dict(zip(*[line.split(",") for line in rec.csv_text().splitlines()]))
    assert csv_row["busy"] == "True" and csv_row["others_cpu_share"] == "0.43"
    assert csv_row["definition_key"] == records.definition_key("d") and len(csv_row[
        "definition_key"]) == 8
    assert "throughput_definition" not in csv_row
    with pytest.raises(RecordError, match=r"others_cpu_share = 1.5 is not a fraction in 0..1"):
        records.BenchRecord.from_json({"definition": "d", "records": [
            {**old, "others_cpu_share": 1.5}]})


def test_environment_keeps_one_shape_per_origin():
    local = records.EnvironmentRecord(os="Linux", python="3.11", packages={"numpy": "2"})
    assert "produced_on" not in local.to_json() and "os" in local.to_json()
    npu = records.EnvironmentRecord(produced_on="Ascend NPU host", npu="Ascend310P3")
    assert "os" not in npu.to_json() and npu.to_json()["npu"] == "Ascend310P3"


def test_parity_has_a_schema_version_and_still_reads_the_bare_list_it_was():
    pairs = [{"a": "onnxruntime", "b": "torch", "images": 3, "top1_agreement_pct": None,
              "max_abs_logit_diff": None}]                # non_finite_images: only when some
    assert records.ParityRecord.from_json(pairs).data() == pairs        # version 0
    assert records.ParityRecord.from_json(pairs).pairs == [records.ParityPair(**pairs[0])]
    out = records.ParityRecord(pairs).to_json()
    assert out == {"schema_version": records.SCHEMA_VERSION, "pairs": pairs}
    assert records.ParityRecord.from_json(out).data() == pairs


OK_ENTRY = {"status": "ok", "backend": "onnxruntime", "device": "cpu", "images": 160,
            "classes": 1000, "label_offset": 0, **{f"top{k}": 10.0 * k for k in range(1, 6)},
            **{f"correct_top{k}": 16 * k for k in range(1, 6)}}
PAIR = {"a": "onnxruntime", "b": "torch", "images": 12, "top1_agreement_pct": 100.0,
        "max_abs_logit_diff": 0.001}
ROW = dict(backend="onnxruntime", device="cpu", batch_size=1, iterations=2, throughput=5.0,
           throughput_definition="d", valid=True, validity="ok")
INFER = {"status": "ok", "backend": "onnxruntime", "compute_throughput": 5.0}


@pytest.mark.parametrize("kind,obj", [
    (records.AccuracyRecord, {"onnxruntime": OK_ENTRY}),
    (records.InferRecord, {"onnxruntime": INFER}),
    (records.ParityRecord, {"pairs": [PAIR]}),
    (records.BenchRecord, {"definition": "d", "records": [ROW]}),
    (records.DatasetRecord, {}),
])
@pytest.mark.parametrize("version", [99, 2, -1, True, "1"])
def test_every_record_checks_its_schema_version(kind, obj, version):
    """accuracy and infer ignored schema_version (99 was read as 1); parity had none."""
    with pytest.raises(RecordError, match=rf"x/records/{kind.NAME}.json: schema_version "
                                          rf"{re.escape(repr(version))} found, supported: 0, 1"):
        kind.from_json({**obj, "schema_version": version}, f"x/records/{kind.NAME}.json")


@pytest.mark.parametrize("kind,obj,key,value", [
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "top1": 1e308}}, "top1", "1e+308"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "top5": -5.0}}, "top5", "-5.0"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "top5": 5.0}}, "top5",
     r"5.0 is below top4"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "images": 10**30}}, "images",
     "1000000000000000000000000000000"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "images": 10}}, "correct_top1",
     "16 is more than images"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "top1": "83.3"}}, "top1", "'83.3'"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "images": True}}, "images", "True"),
    (records.AccuracyRecord, {"onnxruntime": {**OK_ENTRY, "top1": float("nan")}}, "top1",
     "nan is not a finite number"),
    (records.InferRecord, {"onnxruntime": {**INFER, "compute_throughput": -1.0}},
     "compute_throughput", "-1.0"),
    (records.InferRecord, {"onnxruntime": {**INFER, "compute_throughput": float("inf")}},
     "compute_throughput", "inf"),
    (records.BenchRecord, {"definition": "d", "records": [{**ROW, "throughput": "fast"}]},
     "throughput", "'fast'"),
    (records.BenchRecord, {"definition": "d", "records": [{**ROW, "batch_size": 0}]},
     "batch_size", "0"),
    (records.ParityRecord, {"pairs": [{**PAIR, "top1_agreement_pct": 101.0}]},
     "top1_agreement_pct", "101.0"),
    (records.DatasetRecord, {"data_dir": "d", "images": -3, "image_list_sha256": None,
                             "label_file": "l", "label_file_sha256": "s", "keys": [],
                             "bin_dir": "b"}, "images", "-3"),
])
def test_values_are_type_and_range_checked_on_read(kind, obj, key, value):
    """top1 1e308, top5 -5 or below top-1, images 10**30 were rendered as results."""
    pattern = rf"x/records/{kind.NAME}.json.*: {key} = {re.escape(value)}"
    with pytest.raises(RecordError, match=pattern):
        kind.from_json(obj, f"x/records/{kind.NAME}.json")


def test_a_valid_record_reads():
    assert records.AccuracyRecord.from_json({"onnxruntime": OK_ENTRY}).entries[
        "onnxruntime"].top5 == 50.0


@pytest.mark.parametrize("kind,obj,key", [
    (records.BenchRecord, {"definition": "d", "records": [{**ROW, "throughput": 1e300}]},
     "throughput"),
    (records.BenchRecord, {"definition": "d", "records": [{**ROW, "mean_ms": 1e300}]},
     "mean_ms"),
    (records.BenchRecord, {"definition": "d", "records": [{**ROW, "seconds": 2e9}]},
     "seconds"),
    (records.InferRecord, {"onnxruntime": {**INFER, "compute_throughput": 1.5e9}},
     "compute_throughput"),
    (records.InferRecord, {"onnxruntime": {**INFER, "e2e_throughput": 1e300}},
     "e2e_throughput"),
])
def test_rates_and_times_have_an_upper_bound(kind, obj, key):
    """A bench throughput of 1e300 was read, and the index showed it as a 300-digit img/s."""
    with pytest.raises(RecordError, match=rf"x/records/{kind.NAME}.json.*: {key} = .* is not "
                                          rf"a finite number in 0\.\.1,000,000,000"):
        kind.from_json(obj, f"x/records/{kind.NAME}.json")


def test_real_rates_and_a_large_logit_difference_still_read():
    """1e9 is far above any real figure; a logit difference is a measurement, not bounded."""
    fast = {**ROW, "throughput": 2.5e6, "mean_ms": 0.0004, "max_ms": 8.64e7, "seconds": 1e6}
    assert records.BenchRecord.from_json({"definition": "d", "records": [fast]}).records[
        0].throughput == 2.5e6
    pair = {**PAIR, "max_abs_logit_diff": 1e30}
    assert records.ParityRecord.from_json({"pairs": [pair]}).pairs[0].max_abs_logit_diff \
        == 1e30
