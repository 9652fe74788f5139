"""The one report schema: JSON round trip, strict parsing, and the published JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import pytest

from skyline_tui.report import (SCHEMA_VERSION, BatchSample, Breakdown, DeviceInfo, ErrorInfo, LinearFit,
                                LineTiming, MemoryBreakdown, MemoryEntry, ModuleTiming, Predictions, Report,
                                ReportFormatError, Throughput)
from skyline_tui.schema import SCHEMA_PATH, json_schema


def full_report() -> Report:
    return Report(
        entry_point="/p/entry.py", project_root="/p", batch_size=32,
        device=DeviceInfo(type="cpu", name="CPU", memory_capacity_bytes=1 << 34), torch_version="2.13.0",
        throughput=Throughput(samples_per_second=1000.0, iteration_ms=32.0, iteration_ms_stdev=0.5,
                              iterations_measured=10),
        breakdown=Breakdown(profiled_iteration_ms=40.0, optimizer_ms=2.0, other_ms=3.0, iterations_profiled=3,
                            lines=(LineTiming(file="model.py", line=12, code="x = self.fc(x)", forward_ms=10.0,
                                              backward_ms=25.0),),
                            modules=(ModuleTiming(path="", type="Net", forward_ms=10.0, backward_ms=25.0,
                                                  self_forward_ms=0.0, self_backward_ms=0.0),
                                     ModuleTiming(path="fc", type="Linear", forward_ms=10.0, backward_ms=25.0,
                                                  self_forward_ms=10.0, self_backward_ms=25.0, file="model.py",
                                                  line=12))),
        memory=MemoryBreakdown(peak_bytes=1000, peak_source="test", capacity_bytes=None, weights_bytes=100,
                               gradients_bytes=100, optimizer_state_bytes=100, activations_bytes=600,
                               other_bytes=100, entries=(MemoryEntry(kind="activations", bytes=600, module="fc",
                                                                     file="model.py", line=12),)),
        predictions=Predictions(samples=(BatchSample(16, 17.0, 500), BatchSample(32, 32.0, 1000)),
                                run_time_ms=LinearFit(slope=0.94, bias=2.0, r2=1.0),
                                peak_memory_bytes=LinearFit(slope=31.25, bias=0.0, r2=1.0),
                                predicted_max_samples_per_second=1063.8, max_batch_size=512),
        created_at="2026-11-20T00:00:00+00:00",
    )


def test_round_trip_through_json_is_lossless():
    report = full_report()
    assert Report.from_json(report.to_json()) == report


def test_error_report_round_trips():
    report = Report(entry_point="e.py", project_root="", error=ErrorInfo(kind="syntax", message="bad", file="e.py",
                                                                         line=3, traceback="tb"))
    assert Report.from_json(report.to_json()) == report
    assert not report.ok


def test_required_keys_are_always_written():
    data = json.loads(Report(entry_point="e.py", project_root="").to_json())
    for key in ("schema_version", "tool", "entry_point", "project_root", "batch_size", "device", "torch_version",
                "throughput", "breakdown", "memory", "predictions", "error"):
        assert key in data
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["tool"]["name"] == "skyline-tui"


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d.update(schema_version=99), "schema_version"),
    (lambda d: d["throughput"].update(iteration_ms="fast"), "throughput.iteration_ms"),
    (lambda d: d["breakdown"]["lines"][0].pop("line"), "breakdown.lines[0]: missing key 'line'"),
    (lambda d: d.update(batch_size=True), "batch_size: expected an integer"),
    (lambda d: d["throughput"].update(stable=1), "throughput.stable: expected true or false"),
])
def test_malformed_reports_are_refused_with_the_path_to_the_problem(mutate, words):
    data = full_report().to_dict()
    mutate(data)
    with pytest.raises(ReportFormatError, match=words.replace("[", r"\[").replace("]", r"\]")):
        Report.from_dict(data)


def test_published_schema_matches_the_dataclasses():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), \
        "regenerate: python -m skyline_tui.schema > skyline_tui/report.schema.json"


def test_reports_validate_against_the_published_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(full_report().to_dict(), schema)
    bad = full_report().to_dict()
    bad["error"] = {"kind": "nonsense", "message": "x", "file": None, "line": None, "traceback": "",
                    "function": None}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
