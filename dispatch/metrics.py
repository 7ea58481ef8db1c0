"""Dispatch's Prometheus metrics, counted where each event happens (`matcher.py`, `feed.py`).
Defined once per process and registered by the wiring on the registry `/metrics` serves; with
several API processes (`ridehail serve --workers N`) prometheus_client writes them to shared
files and any process's `/metrics` sums them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OFFERS_MADE = Counter("ridehail_offers_made", "Offers made to drivers", registry=None)
OFFERS_ACCEPTED = Counter("ridehail_offers_accepted", "Offers their driver accepted",
                          registry=None)
OFFERS_REJECTED = Counter("ridehail_offers_rejected",
                          "Offers their driver rejected before the deadline", registry=None)
OFFERS_EXPIRED = Counter("ridehail_offers_expired",
                         "Offers unanswered at their deadline (or rejected after it)",
                         registry=None)
DISPATCH_LATENCY = Histogram(
    "ridehail_dispatch_latency_seconds",
    "One dispatch of a trip: candidate search, the claim and its commit, until the offer is "
    "made or the trip ends with no driver",
    ["outcome"],  # offered | no_driver
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=None)
for _outcome in ("offered", "no_driver"):
    DISPATCH_LATENCY.labels(_outcome)  # both series exist from the start
# The worst lag of the live processes: how old the newest entry applied from a Redis stream
# was when it was applied (the entry id's milliseconds are Redis's clock).
STREAM_LAG = Gauge("ridehail_stream_lag_seconds",
                   "Age of the last entry applied from a Redis stream, when applied",
                   ["stream"], multiprocess_mode="livemax", registry=None)

ALL = (OFFERS_MADE, OFFERS_ACCEPTED, OFFERS_REJECTED, OFFERS_EXPIRED, DISPATCH_LATENCY,
       STREAM_LAG)
