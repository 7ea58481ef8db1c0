"""Payments' Prometheus metrics, counted where an attempt is recorded
(`billing.py:_settle`). Registered by the wiring (see `dispatch/metrics.py`)."""

from __future__ import annotations

from prometheus_client import Counter

PAYMENT_ATTEMPTS = Counter("ridehail_payment_attempts",
                           "Attempts at charging a trip (each recorded outcome)", registry=None)
PAYMENT_FAILURES = Counter(
    "ridehail_payment_failures",
    "Attempts that did not capture: `transient` will be retried, `final` marked the payment "
    "failed (declined, no method, or retries exhausted)",
    ["kind"], registry=None)
for _kind in ("transient", "final"):
    PAYMENT_FAILURES.labels(_kind)  # both series exist from the start, at 0

ALL = (PAYMENT_ATTEMPTS, PAYMENT_FAILURES)
