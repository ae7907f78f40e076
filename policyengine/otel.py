"""OpenTelemetry: metrics and span events of a driver and its governor
(the ``otel`` extra: the OpenTelemetry API only; bring your
own SDK and exporters).

    import policyengine as pe
    from policyengine.otel import instrument
    from policyengine.httpx import PolicyTransport

    transport = PolicyTransport(driver=instrument(pe.Driver()))

Each attempt adds a ``policyengine.attempt`` event to the span current when
the call is made (your HTTP client's or your own), with the decision:
``policyengine.kind``, ``.classification``, ``.rule``, ``.delay``,
``.delay_source``, ``.attempt``, ``.status``, ``.transport``, ``.model``.
Metrics (meter ``policyengine``):

- ``policyengine.attempts`` (counter; ``kind``, ``classification``): every decision;
- ``policyengine.retries``, ``policyengine.fallbacks``, ``policyengine.give_ups``
  (counters; ``classification``);
- ``policyengine.waits`` (histogram, seconds; ``source``: ``policy`` for the
  waits between attempts, ``governor`` for the governor's holds);
- ``policyengine.governor.transitions`` (counter; ``transition``: circuit
  opened, reopened, closed; a failure made sticky);
- ``policyengine.governor.refusals`` (counter; ``reason``: sticky, circuit, slot);
- ``policyengine.limiter.waits`` (counter): sends that waited for a slot.

No attribute carries a secret: the texts are redacted and a governor key is
host, credential fingerprint and model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from opentelemetry import metrics, trace

from ._driver import Driver
from ._governor import GovernorEvent
from ._results import Decision

__all__ = ["Telemetry", "instrument"]

_TRANSITIONS = frozenset({"circuit_opened", "circuit_reopened", "circuit_closed", "sticky"})


class Telemetry:
    """A driver hook and a governor listener that report to OpenTelemetry.

    Args:
        meter_provider: Default the global one.
        tracer_provider: Not needed for span events (they go on the current
            span); kept for symmetry with other instrumentations.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        from . import __version__

        meter = metrics.get_meter("policyengine", __version__, meter_provider)
        self._attempts = meter.create_counter(
            "policyengine.attempts", unit="{attempt}", description="Decisions, one per attempt."
        )
        self._retries = meter.create_counter("policyengine.retries", unit="{retry}")
        self._fallbacks = meter.create_counter("policyengine.fallbacks", unit="{fallback}")
        self._give_ups = meter.create_counter("policyengine.give_ups", unit="{call}")
        self._waits = meter.create_histogram(
            "policyengine.waits", unit="s", description="Waits before an attempt."
        )
        self._transitions = meter.create_counter(
            "policyengine.governor.transitions", unit="{transition}"
        )
        self._refusals = meter.create_counter("policyengine.governor.refusals", unit="{call}")
        self._paced = meter.create_counter("policyengine.limiter.waits", unit="{send}")

    # --- the driver's hook ---------------------------------------------------------

    def __call__(self, decision: Decision) -> None:
        action = decision.action
        kind = str(action.kind)
        attributes: dict[str, Any] = {
            "policyengine.kind": kind,
            "policyengine.classification": action.classification,
            "policyengine.rule": action.rule_id,
            "policyengine.delay": float(action.delay),
            "policyengine.delay_source": action.delay_source,
            "policyengine.attempt": decision.attempt.number,
        }
        if action.status is not None:
            attributes["policyengine.status"] = action.status
        if action.transport is not None:
            attributes["policyengine.transport"] = action.transport
        if decision.attempt.model:
            attributes["policyengine.model"] = decision.attempt.model
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event("policyengine.attempt", attributes)
        labels: Mapping[str, str] = {"classification": action.classification}
        self._attempts.add(1, {"kind": kind, **labels})
        if kind == "retry":
            self._retries.add(1, labels)
        elif kind == "fallback":
            self._fallbacks.add(1, labels)
        elif kind == "fail":
            self._give_ups.add(1, labels)
        if decision.wait > 0:
            self._waits.record(decision.wait, {"source": "policy"})

    # --- the governor's listener ---------------------------------------------------

    def governor_event(self, event: GovernorEvent) -> None:
        """Count what the governor did."""
        if event.kind in _TRANSITIONS:
            self._transitions.add(1, {"transition": event.kind})
        elif event.kind == "refused":
            self._refusals.add(1, {"reason": event.reason})
        elif event.kind in ("paced", "held"):
            self._waits.record(event.seconds, {"source": "governor"})
            if event.kind == "paced":
                self._paced.add(1)


def instrument(driver: Driver, telemetry: Telemetry | None = None) -> Driver:
    """``driver`` reporting to OpenTelemetry: a driver with ``telemetry`` as a
    hook more (the same engine, governor, logger and clock), its governor
    telling ``telemetry`` what it does.

    Returns:
        The instrumented driver (drivers are immutable: use the one returned).
    """
    telemetry = telemetry if telemetry is not None else Telemetry()
    if driver.governor is not None:
        driver.governor.listeners.append(telemetry.governor_event)
    return attrs.evolve(driver, hooks=(*driver.hooks, telemetry))
