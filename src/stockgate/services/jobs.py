"""Names of the background queues and jobs, and which worker role serves which queue.

Plain names shared by the queue adapter (producer and worker side) and the worker process;
the handlers behind the names are registered in entrypoints/worker/jobs.py.
"""

from __future__ import annotations

from collections.abc import Mapping

FULFILLMENT_QUEUE = "fulfillment"
PAYMENTS_QUEUE = "payments"
MAINTENANCE_QUEUE = "maintenance"
QUEUES = (FULFILLMENT_QUEUE, PAYMENTS_QUEUE, MAINTENANCE_QUEUE)

FULFILL_ORDER = "fulfill-order"
PROCESS_PAYMENT_EVENT = "process-payment-event"

# Queues each role takes jobs from ("expiry" polls PostgreSQL instead; "all" takes every one).
ROLE_QUEUES: Mapping[str, tuple[str, ...]] = {
    "fulfillment": (FULFILLMENT_QUEUE, PAYMENTS_QUEUE),
    "expiry": (),
    "maintenance": (MAINTENANCE_QUEUE,),
    "all": QUEUES,
}
