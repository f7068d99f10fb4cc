"""Prometheus metrics of stockgate (the default registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "stockgate_http_request_duration_seconds",
    "HTTP request latency by route and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
HOLDS_TAKEN = Counter("stockgate_holds_taken_total", "Reservations taken.")
HOLDS_REFUSED = Counter(
    "stockgate_holds_refused_total", "Reservation requests refused, by reason.", ["reason"]
)
HOLDS_RELEASED = Counter("stockgate_holds_released_total", "Reservations given back by buyers.")
HOLDS_EXPIRED = Counter("stockgate_holds_expired_total", "Reservations that expired.")
EXPIRY_GIVE_BACK_WAITING = Gauge(
    "stockgate_expiry_give_back_waiting",
    "Expired reservations whose stock did not reach the gate yet (retried by the expiry worker).",
)
EXPIRY_GIVE_BACK_DROPPED = Counter(
    "stockgate_expiry_give_back_dropped_total",
    "Expired reservations the expiry worker stopped retrying (the reconciler gives them back).",
)
RECONCILE_DRIFT_FOUND = Counter(
    "stockgate_reconcile_drift_found_total", "Products found drifted by the reconciler."
)
RECONCILE_DRIFT_FIXED = Counter(
    "stockgate_reconcile_drift_fixed_total", "Products the reconciler repaired."
)
GROUP_COMMIT_BATCH = Histogram(
    "stockgate_group_commit_batch_size",
    "Reservations written per group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
GATE_BATCH = Histogram(
    "stockgate_gate_pipeline_batch_size",
    "Gate script calls sent per Redis pipeline.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)

# --------------------------------------------------------------------------- jobs, fulfillment
JOBS = Counter(
    "stockgate_jobs_total",
    "Background jobs run, by queue, job and outcome (completed, retried, failed, canceled).",
    ["queue", "job", "outcome"],
)
JOB_DURATION = Histogram(
    "stockgate_job_duration_seconds",
    "How long one run of a background job took, by queue and job.",
    ["queue", "job"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
QUEUE_WAITING = Gauge("stockgate_queue_waiting", "Jobs waiting in a queue.", ["queue"])
QUEUE_ACTIVE = Gauge("stockgate_queue_active", "Jobs running.", ["queue"])
QUEUE_DELAYED = Gauge("stockgate_queue_delayed", "Jobs waiting for a retry or a delay.", ["queue"])
QUEUE_FAILED = Gauge("stockgate_queue_failed", "Jobs that gave up (kept until purged).", ["queue"])
QUEUE_OLDEST_WAITING = Gauge(
    "stockgate_queue_oldest_waiting_seconds", "Age of the oldest waiting job.", ["queue"]
)
FULFILLMENT_LAG = Histogram(
    "stockgate_fulfillment_lag_seconds",
    "Time from an order's payment to its fulfillment.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
FULFILLMENTS = Counter(
    "stockgate_fulfillments_total",
    "Fulfillment attempts by outcome (fulfilled, retry, failed, skipped).",
    ["outcome"],
)
PERIODIC_RUNS = Counter(
    "stockgate_periodic_runs_total", "Maintenance tasks run, by task.", ["task"]
)


def observe_job(queue: str, job: str, outcome: str, seconds: float) -> None:
    JOBS.labels(queue, job, outcome).inc()
    JOB_DURATION.labels(queue, job).observe(seconds)


# Live stock (Socket.IO)
STOCK_UPDATES_SENT = Counter(
    "stockgate_stock_updates_sent_total",
    "Coalesced `stock` events sent by this process (one per product per flush).",
)
WATCHERS_CONNECTED = Gauge(
    "stockgate_watchers_connected", "Socket.IO clients connected to this API process."
)
