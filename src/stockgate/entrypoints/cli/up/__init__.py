"""`stockgate up`: everything on one machine, supervised.

Order: check the ports, then the stores (`stores.py`: embedded when not configured,
migrated), the demo data (`demo.py`, --demo), the fake Stripe (`fake_stripe.py`, when no Stripe
key is set), the API (`api.py`) and the workers (`workers.py`) as child processes; wait for the
API's /healthz, print the URLs, supervise. Processes are started and stopped by
`stockgate.supervisor`.

A child that dies stops everything with exit 1. There is deliberately no restart loop: on a
developer's machine a crash should be seen, not hidden behind restarts; production runs
`stockgate api` and `stockgate worker` under a real supervisor (systemd, Kubernetes).

Ctrl-C or SIGTERM: the API and workers get SIGTERM and STOP_SECONDS to finish, then SIGKILL
(their whole process group); then the fake Stripe; then the embedded servers, unless another
command is still using them. A second Ctrl-C skips the wait. Children run in their own
sessions so a terminal's Ctrl-C reaches only this supervisor, which stops them in that order;
on Linux they also get SIGTERM should the supervisor itself die (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

from stockgate.adapters.embedded.stores import embedded_stores
from stockgate.config import DEV_SECRET_KEY, Settings, StoreUrls, weak_secret_key
from stockgate.domain.errors import StoreUnavailable
from stockgate.entrypoints.cli.up import api, fake_stripe
from stockgate.entrypoints.cli.up.demo import add_demo_data
from stockgate.entrypoints.cli.up.environment import child_environment
from stockgate.entrypoints.cli.up.stores import prepare_stores
from stockgate.entrypoints.cli.up.terminal import StopRequests, say, stop_requests
from stockgate.entrypoints.cli.up.workers import start_workers
from stockgate.supervisor import STOP_SECONDS, StartFailed, Supervisor

EXIT_STOPPED = 0
EXIT_CHILD_DIED = 1
EXIT_BAD_SETUP = 2
EXIT_STORE_UNAVAILABLE = 3


def run_up(settings: Settings, *, demo: bool) -> int:
    key = settings.secret_key.get_secret_value()
    weak = weak_secret_key(key)
    if weak is not None and key != DEV_SECRET_KEY:
        say(f"error: {weak}")  # set, but too short: refused here as `api` would refuse it
        return EXIT_BAD_SETUP
    busy = busy_port(settings)
    if busy is not None:
        say(busy)
        return EXIT_BAD_SETUP
    with stop_requests() as stop:
        try:
            with embedded_stores(settings) as urls:
                return _run(settings, urls, stop, demo=demo)
        except StoreUnavailable as exc:
            say(f"error: {exc.detail}")
            return EXIT_STORE_UNAVAILABLE


def busy_port(settings: Settings) -> str | None:
    """One line naming the setting to change when a port `up` needs is taken, else None."""
    return api.busy_port(settings) or fake_stripe.busy_port(settings)


def _run(settings: Settings, urls: StoreUrls, stop: StopRequests, *, demo: bool) -> int:
    prepare_stores(settings, urls)
    if demo and not stop.requested:
        add_demo_data(settings, urls)
    env = child_environment(settings, urls)
    stripe = None
    if fake_stripe.wanted(settings) and not stop.requested:
        stripe = fake_stripe.start_fake_stripe(settings, env)
    children = Supervisor(stop_seconds=STOP_SECONDS)
    try:
        if stop.requested:
            return EXIT_STOPPED
        api.start_api(children, env)
        start_workers(children, env)
        try:
            if not api.wait_until_healthy(settings, children, lambda: stop.requested):
                return EXIT_STOPPED
        except StartFailed as exc:
            say(f"error: {exc}; stopping")
            return EXIT_CHILD_DIED
        api.print_urls(settings, stripe)
        died = children.watch(
            cancelled=lambda: stop.requested, also=lambda: fake_stripe.died(stripe)
        )
        if died is None:
            return EXIT_STOPPED
        say(f"error: {died}; stopping everything")
        return EXIT_CHILD_DIED
    finally:
        initial = stop.count
        for name in children.stop(hurry=lambda: stop.count > max(initial, 1)):
            say(f"{name} did not stop in time; killed")
        if stripe is not None:
            stripe.stop()
        say("stopped")
