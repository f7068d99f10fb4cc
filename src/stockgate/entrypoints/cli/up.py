"""`stockgate up`: everything on one machine, supervised.

Order: check the ports, then the stores (embedded when not configured), migrations, the demo
data (--demo), the fake Stripe (when no Stripe key is set), the API and the workers as child
processes; wait for the API's /healthz, print the URLs, supervise.

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

import asyncio
import ctypes
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from stockgate.adapters.embedded.fake_stripe import FakeStripe, FakeStripeUnavailable
from stockgate.adapters.embedded.stores import embedded_stores
from stockgate.adapters.postgres.migrate import upgrade
from stockgate.bootstrap import bootstrap
from stockgate.config import DEV_SECRET_KEY, Settings, StoreUrls, weak_secret_key
from stockgate.domain.errors import DuplicateSku, StoreUnavailable
from stockgate.domain.product import NewProduct
from stockgate.services import admins, catalog
from stockgate.services.ports import AdminUsers

EXIT_STOPPED = 0
EXIT_CHILD_DIED = 1
EXIT_BAD_SETUP = 2
EXIT_STORE_UNAVAILABLE = 3
STOP_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.2
DEMO_ADMIN = "admin"
DEMO_ADMIN_FILE = "demo-admin.txt"  # in the data dir, 0600: lets a second `up --demo` show it
SECRET_KEY_FILE = "secret-key"  # in the data dir, 0600: a second `up` keeps buyers' tokens valid
DEMO_CATALOG = (
    NewProduct(
        sku="DROP-SNEAKER-42",
        name="Limited sneaker, size 42",
        price_cents=18_000,
        stock=50,
        limit_per_customer=1,
    ),
    NewProduct(
        sku="TICKET-GA",
        name="Concert ticket, general admission",
        price_cents=6_500,
        stock=500,
        limit_per_customer=4,
    ),
    NewProduct(sku="VINYL-FIRST-PRESS", name="Vinyl, first pressing", price_cents=3_900, stock=200),
    NewProduct(
        sku="CONSOLE-BUNDLE",
        name="Console bundle",
        price_cents=54_900,
        stock=10,
        limit_per_customer=1,
    ),
)


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


def _run(settings: Settings, urls: StoreUrls, stop: StopRequests, *, demo: bool) -> int:
    say(
        f"stores: PostgreSQL {_where(settings.database_url, 'postgres', settings)}, "
        f"Redis {_where(settings.redis_url, 'valkey', settings)}"
    )
    upgrade(urls.database_url)
    if demo and not stop.requested:
        asyncio.run(add_demo_data(settings, urls))
    env = child_environment(settings, urls)
    fake_stripe = None
    if settings.stripe_secret_key is None and not stop.requested:
        fake_stripe = start_fake_stripe(settings, env)
    children: list[Child] = []
    try:
        if stop.requested:
            return EXIT_STOPPED
        children.append(Child.start("api", ["api"], env))
        children.append(Child.start("worker", ["worker", "--role", "all"], env))
        if not wait_until_healthy(settings, children, stop):
            if stop.requested:
                return EXIT_STOPPED
            say(f"error: {_died(children) or 'the API did not become healthy'}; stopping")
            return EXIT_CHILD_DIED
        print_urls(settings, fake_stripe)
        return supervise(children, fake_stripe, stop)
    finally:
        stop_children(children, stop)
        if fake_stripe is not None:
            fake_stripe.stop()
        say("stopped")


def _where(configured: str | None, name: str, settings: Settings) -> str:
    return "configured" if configured else f"embedded ({settings.data_dir.resolve() / name})"


# ---------------------------------------------------------------------------- ports


def busy_port(settings: Settings) -> str | None:
    """One line naming the setting to change when a port `up` needs is taken, else None."""
    if not port_free(settings.http_host, settings.http_port):
        return f"error: port {settings.http_port} is in use; set STOCKGATE_HTTP_PORT"
    if settings.stripe_secret_key is None:
        port = settings.fake_stripe_port
        if port == settings.http_port or not port_free("::", port):
            return f"error: port {port} (fake Stripe) is in use; set STOCKGATE_FAKE_STRIPE_PORT"
    return None


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        probe = socket.socket(family, socket.SOCK_STREAM)
    except OSError:  # no IPv6 here: the IPv4 wildcard is what a server would bind
        return port_free("0.0.0.0", port)
    with probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                return port_free("0.0.0.0", port)
            raise
    return True


# ---------------------------------------------------------------------------- signals


class StopRequests:
    def __init__(self) -> None:
        self.count = 0

    @property
    def requested(self) -> bool:
        return self.count > 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1:
            say(f"{signal.Signals(signum).name}: stopping (again to skip waiting)")


@contextmanager
def stop_requests() -> Iterator[StopRequests]:
    """SIGINT and SIGTERM only set a flag: every step checks it, so cleanup runs in order."""
    stop = StopRequests()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------- children


def child_environment(settings: Settings, urls: StoreUrls) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "STOCKGATE_DATABASE_URL": urls.database_url,
            "STOCKGATE_REDIS_URL": urls.redis_url,
            "STOCKGATE_DATA_DIR": str(settings.data_dir.resolve()),
            "STOCKGATE_SECRET_KEY": secret_key(settings),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def secret_key(settings: Settings) -> str:
    """The configured secret key, or this machine's own random one (kept in the data dir).

    `api` and `worker` refuse the built-in development key, so `up` never hands it on.
    """
    key = settings.secret_key.get_secret_value()
    if weak_secret_key(key) is None:
        return key
    saved = settings.data_dir.resolve() / SECRET_KEY_FILE
    if saved.exists():
        key = saved.read_text().strip()
        if weak_secret_key(key) is None:
            return key
    key = secrets.token_urlsafe(48)
    saved.parent.mkdir(parents=True, exist_ok=True)
    _save_private(saved, key)
    return key


@dataclass(slots=True)
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, name: str, args: list[str], env: dict[str, str]) -> Child:
        command = [sys.executable, "-m", "stockgate.entrypoints.cli.main", *args]
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),  # no other threads run at this point
        )
        return cls(name, process)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def set_parent_death_signal() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os.kill(os.getpid(), signal.SIGTERM)

    return set_parent_death_signal


def stop_children(children: list[Child], stop: StopRequests) -> None:
    running = [c for c in children if c.process.poll() is None]
    for child in running:
        _signal(child.process.pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + STOP_SECONDS
    initial = stop.count
    while any(c.process.poll() is None for c in running):
        if time.monotonic() > deadline or stop.count > max(initial, 1):
            break
        time.sleep(0.05)
    for child in children:
        # Also whatever the child left in its group (granian's worker processes).
        _signal(child.process.pid, signal.SIGKILL, group=True)
        if child.process.poll() is None:
            say(f"{child.name} did not stop in time; killed")
        child.process.wait()


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass  # already gone


def start_fake_stripe(settings: Settings, env: dict[str, str]) -> FakeStripe | None:
    data_dir = settings.data_dir.resolve()
    # Its own state directory: intents survive a restart of `up` like the embedded stores' data,
    # and no other localstripe on the machine shares them.
    fake = FakeStripe(
        settings.fake_stripe_port, data_dir / "fake-stripe.log", state_dir=data_dir / "fake-stripe"
    )
    try:
        fake.start()
        fake.register_webhook(f"{api_url(settings)}/api/v1/stripe/webhook")
    except (FakeStripeUnavailable, OSError) as exc:
        fake.stop()
        say(
            f"warning: the fake Stripe (localstripe) did not start: {exc}; running without "
            "payments (checkout answers 503) - set STOCKGATE_STRIPE_SECRET_KEY to use Stripe"
        )
        return None
    env.update(fake.environment())
    return fake


# ---------------------------------------------------------------------------- running


def api_url(settings: Settings) -> str:
    host = settings.http_host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def wait_until_healthy(settings: Settings, children: list[Child], stop: StopRequests) -> bool:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while not stop.requested:
        if _died(children) is not None:
            return False
        if _answers(f"{api_url(settings)}/healthz"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def print_urls(settings: Settings, fake_stripe: FakeStripe | None) -> None:
    base = api_url(settings)
    lines = [
        f"stockgate is up (data in {settings.data_dir.resolve()})",
        # The storefront (/) and the admin dashboard (/admin) arrive with their stages;
        # only URLs that answer are printed.
        f"  API docs     {base}/docs",
        f"  products     {base}/api/v1/products",
        f"  metrics      {base}/metrics",
    ]
    if fake_stripe is not None:
        lines.append(f"  fake Stripe  {fake_stripe.api_base}")
    lines.append("Press Ctrl-C to stop.")
    print("\n".join(lines), flush=True)


def supervise(children: list[Child], fake: FakeStripe | None, stop: StopRequests) -> int:
    while not stop.requested:
        died = _died(children)
        if died is None and fake is not None and fake.exit_code() is not None:
            died = f"the fake Stripe exited with code {fake.exit_code()}"
        if died is not None:
            say(f"error: {died}; stopping everything")
            return EXIT_CHILD_DIED
        time.sleep(POLL_SECONDS)
    return EXIT_STOPPED


def _died(children: list[Child]) -> str | None:
    for child in children:
        code = child.process.poll()
        if code is not None:
            return f"{child.name} exited with code {code}"
    return None


def say(message: str) -> None:
    print(f"up: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- demo


async def add_demo_data(settings: Settings, urls: StoreUrls) -> None:
    container = await bootstrap(settings, urls)
    try:
        added = 0
        for new in DEMO_CATALOG:
            try:
                await catalog.add_product(
                    new, uow_factory=container.uow_factory, gate=container.gate
                )
                added += 1
            except DuplicateSku:
                pass  # a second `up --demo` keeps what the first added
        say(f"demo catalog: {added} product(s) added, {len(DEMO_CATALOG) - added} already there")
        await _demo_admin(settings, container.admin_users)
    finally:
        await container.close()


async def _demo_admin(settings: Settings, users: AdminUsers) -> None:
    saved = settings.data_dir.resolve() / DEMO_ADMIN_FILE
    if await users.find(DEMO_ADMIN) is None:
        password = secrets.token_urlsafe(12)
        await admins.create_admin(DEMO_ADMIN, password, users=users)
        _save_private(saved, password)
        say(f"demo admin login: {DEMO_ADMIN} / {password}")
    elif saved.exists():
        say(f"demo admin login: {DEMO_ADMIN} / {saved.read_text().strip()}")
    else:
        say(f"admin user {DEMO_ADMIN!r} exists already; its password was not set by --demo")


def _save_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # O_CREAT's mode applies only to a new file
    with os.fdopen(descriptor, "w") as file:
        file.write(text + "\n")
