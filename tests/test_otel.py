"""OpenTelemetry: a span event per attempt and the counters, read back from a
real OpenTelemetry SDK (in-memory reader and exporter) after real calls
through httpx against the fake gateway; no secret in any attribute."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

import policyengine as pe
from policyengine.httpx import PolicyTransport
from policyengine.testing import (
    FakeGateway,
    invalid_api_key,
    quota_exhausted,
    rate_limited,
    testing_mode,
    unavailable,
)

sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from policyengine.otel import Telemetry, instrument  # noqa: E402

SECRET = "sk-live-0123456789abcdefghijkl"


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _total(points: dict[str, list[Any]], name: str, **attributes: str) -> float:
    return sum(
        p.value
        for p in points.get(name, [])
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def test_attempts_become_span_events_and_counts() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(meter_provider=sdk_metrics.MeterProvider(metric_readers=[reader]))
    driver = instrument(pe.Driver(pe.Engine(pe.load_policy(env=False))), telemetry)
    tracer = tracer_provider.get_tracer("test")
    with (
        FakeGateway() as gateway,
        httpx.Client(transport=PolicyTransport(driver=driver), timeout=10) as client,
        testing_mode(),
    ):
        gateway.script(rate_limited(retry_after=1), unavailable())
        with tracer.start_as_current_span("chat"):
            assert client.post(gateway.chat_url, json={"model": "m"}).status_code == 200
        gateway.script(invalid_api_key(echo_key=True))
        with tracer.start_as_current_span("bad-key"):
            client.post(
                gateway.chat_url, json={"model": "m"}, headers={"Authorization": f"Bearer {SECRET}"}
            )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    events = [e for e in spans["chat"].events if e.name == "policyengine.attempt"]
    assert [e.attributes["policyengine.kind"] for e in events] == ["retry", "retry", "succeed"]
    assert events[0].attributes["policyengine.delay_source"] == "server"
    assert events[0].attributes["policyengine.status"] == 429
    points = _points(reader)
    assert _total(points, "policyengine.attempts") == 4
    assert _total(points, "policyengine.retries", classification="rate_limit") == 1
    assert _total(points, "policyengine.give_ups", classification="authentication") == 1
    assert _total(points, "policyengine.governor.transitions", transition="sticky") == 1
    everything = repr([e.attributes for s in spans.values() for e in s.events]) + repr(points)
    assert SECRET not in everything and SECRET[8:] not in everything


def test_the_governor_counts_refusals_and_waits() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=sdk_metrics.MeterProvider(metric_readers=[reader]))
    driver = instrument(pe.Driver(pe.Engine(pe.load_policy(env=False))), telemetry)
    with (
        FakeGateway(default=quota_exhausted()) as gateway,
        httpx.Client(transport=PolicyTransport(driver=driver), timeout=10) as client,
    ):
        for _ in range(3):
            client.post(gateway.chat_url, json={"model": "m"})
    points = _points(reader)
    assert _total(points, "policyengine.governor.refusals", reason="sticky") == 2


def test_without_the_extra_nothing_is_imported() -> None:
    code = (
        "import sys, policyengine, policyengine.httpx\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
