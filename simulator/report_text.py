"""What the report's figures and settings mean: labels and one-line explanations.

The order of `KPI_SPECS` is the order of the report: the headline figures first. A key the
simulator adds without a spec here is still shown (after these, under its raw name).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KPI_SPECS", "PARAM_HELP", "Figure"]


@dataclass(frozen=True)
class Figure:
    key: str  # the key in report.json's "kpis"
    label: str
    kind: str  # pct | s | num | km | money
    help: str
    headline: bool = False


KPI_SPECS: tuple[Figure, ...] = (
    Figure("served_pct", "Requests served", "pct",
           "Share of ride requests that ended in a completed trip.", True),
    Figure("pickup_wait_p50_s", "Pickup wait, median", "s",
           "Half of the served riders waited less than this, from asking for a ride to their "
           "driver's arrival.", True),
    Figure("pickup_wait_p90_s", "Pickup wait, 90th percentile", "s",
           "Nine served riders in ten waited less than this.", True),
    Figure("driver_utilisation_after_warmup_pct", "Driver utilisation (after warm-up)", "pct",
           "Share of online drivers' time spent driving to a pickup or carrying a rider, "
           "leaving out the warm-up (below); n/a when the run is too short to have one.", True),
    Figure("no_driver_pct", "No driver found", "pct",
           "Share of requests for which dispatch found no driver who accepted in time.", True),
    Figure("rider_cancel_pct", "Cancelled by the rider", "pct",
           "Share of requests the rider cancelled: no driver had accepted before their "
           "patience ran out.", True),
    Figure("trips_per_hour", "Completed trips per hour", "num",
           "Completed trips divided by the length of the demand window.", True),
    Figure("revenue", "Fare revenue", "money", "Sum of the fares of the completed trips.", True),
    Figure("requests", "Ride requests", "num",
           "Requests made during the demand window (replayed or synthetic)."),
    Figure("completed", "Completed trips", "num", "Requests that ended with a drop-off."),
    Figure("pickup_wait_mean_s", "Pickup wait, mean", "s",
           "Average wait of the served riders; a few long waits pull it above the median."),
    Figure("pickup_wait_p99_s", "Pickup wait, 99th percentile", "s",
           "The wait only one served rider in a hundred exceeded."),
    Figure("offers", "Offers made", "num",
           "Ride offers sent to drivers; a request may need several if drivers decline or "
           "let an offer expire."),
    Figure("offer_acceptance_pct", "Offers accepted", "pct",
           "Share of offers the driver accepted (--accept-prob sets the drivers' habit)."),
    Figure("driver_utilisation_pct", "Driver utilisation (whole run, with warm-up)", "pct",
           "The same share over the whole demand window, warm-up included: the fleet starts "
           "with no trips in hand, so this is lower than the figure after warm-up."),
    Figure("warmup_s", "Warm-up left out", "s",
           "The start of the run the utilisation above leaves out: about one trip's length "
           "(the median time from request to drop-off), in whole 5-minute intervals, at most "
           "half the run. Every other figure covers the whole run."),
    Figure("empty_km_pct", "Empty distance share", "pct",
           "Share of the distance driven without a rider: to pickups and repositioning."),
    Figure("empty_km", "Distance driven empty", "km", "Kilometres driven without a rider."),
    Figure("loaded_km", "Distance driven with a rider", "km",
           "Kilometres driven with a rider on board."),
    Figure("pickup_eta_median_abs_pct_error", "Pickup ETA error, median", "pct",
           "How far dispatch's predicted pickup time (the offer's ETA) was from the drive the "
           "driver then took, as a share of that drive: half the pickups missed by less."),
    Figure("pickup_eta_p90_abs_pct_error", "Pickup ETA error, 90th percentile", "pct",
           "Nine pickups in ten missed their predicted time by less than this share."),
    Figure("pickup_eta_median_predicted_over_actual", "Pickup ETA, predicted / actual", "num",
           "Median of predicted over actual pickup drive: under 1, dispatch is optimistic."),
    Figure("pickup_eta_pairs", "Pickups compared", "num",
           "Accepted offers whose driver reached the pickup (engine mode only)."),
)

# The configuration table's explanations (params the simulator records).
PARAM_HELP: dict[str, str] = {
    "mode": "engine: the dispatch engine in this process; http: a running server's API",
    "city": "the --city file (absent: the NYC boroughs)",
    "city_name": "the service area's name",
    "demand": "the --demand file (absent: synthetic demand around hotspots)",
    "demand_source": "where the requests came from",
    "demand_format": "the demand file's format, recognised from its header",
    "demand_rows_read": "rows read from the demand file (rejected rows are listed above)",
    "demand_rate": "requests per hour (--demand-rate; absent: as recorded)",
    "drivers": "drivers in the simulated fleet",
    "duration_s": "length of the demand window in simulated seconds (--duration)",
    "policy": "dispatch policy: greedy (each request at once) or batched (matched in windows)",
    "seed": "random seed: the same seed and flags give the same report",
    "accept_prob": "probability that a driver accepts an offer",
    "reposition": "what idle drivers do: stay, drive at random, head for the requests of the "
                  "next 15 minutes (demand), or for those unserved in the last 15 (rebalance)",
    "eta_model": "--eta-model: the travel-time model file of dispatch and the fleet "
                 "(absent: the city's shipped model, NYC; straight-line: the old straight lines)",
    "tick_s": "each driver reports its position this often, in simulated seconds",
    "drain_limit_s": "after the demand window, open trips get at most this long to finish",
    "simulated_s": "simulated seconds when the run ended: the demand window (duration_s) plus "
                   "the drain, the time the trips still open at its end took to finish; "
                   "simulated time, not wall-clock time",
    "events": "events the simulated clock ran",
    "checks": "conservation checks: every request ends once, every completed trip is charged "
              "once, no driver holds two trips at once",
    "speed": "http mode: simulated seconds per wall-clock second",
    "http_counts": "http mode: what the fleet sent and what became of it",
    "http_refusals": "http mode: requests the API refused, by reason",
    "fleet": "other fleet settings",
    "riders": "rider behaviour settings",
    "dispatch": "the batched policy's settings (--batch-window, --batch-hold, --batch-eta-cap, "
                "--batch-eta-cap-growth, --batch-forward)",
}
