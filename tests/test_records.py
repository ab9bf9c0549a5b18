"""Typed records: a mistyped field fails where it is written, an unknown or missing key where
it is read; records of runs written before schema_version still read."""
import dataclasses

import pytest

from zoorepro import records
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
    ({**ATC, "schema_version": 99}, "newer than this zoorepro reads"),
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
    row.update(backend="onnxruntime", device="cpu", valid=True, validity="ok")
    rec = records.BenchRecord(definition="d", records=[row])
    assert rec.csv_text().splitlines()[0].split(",") == list(records.BENCH_CSV_FIELDS
                                                             + records.BENCH_CSV_RUN_FIELDS)
    with pytest.raises(RecordError, match=r"bench.json \[0\].*unknown key\(s\) thruput"):
        records.BenchRecord(definition="d", records=[{**row, "thruput": 3}])


def test_environment_keeps_one_shape_per_origin():
    local = records.EnvironmentRecord(os="Linux", python="3.11", packages={"numpy": "2"})
    assert "produced_on" not in local.to_json() and "os" in local.to_json()
    npu = records.EnvironmentRecord(produced_on="Ascend NPU host", npu="Ascend310P3")
    assert "os" not in npu.to_json() and npu.to_json()["npu"] == "Ascend310P3"


def test_parity_reads_the_list_it_always_was():
    pairs = [{"a": "onnxruntime", "b": "torch", "images": 3}]
    assert records.ParityRecord.from_json(pairs).to_json() == pairs
