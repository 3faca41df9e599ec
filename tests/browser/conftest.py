"""The admin in a real browser: Debian's Chromium driven by Playwright (nothing downloaded at test time), the app
served by Django's live server in this process (so the test sees the e-mail it sends), and a real RQ worker
process that provisions organisations. Every page is checked for console errors, uncaught exceptions, failed
requests and HTTP errors; key pages are saved as screenshots under ``var/screenshots/`` (git-ignored)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import django_rq
import pyotp
import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.processes import ROOT, app_env, start_worker, stop

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"
BROWSER_DB = pytest.mark.django_db(databases=["default", "tenants"], transaction=True)


def chromium_path() -> str:
    """``CHROMIUM_PATH``, else Debian's ``/usr/bin/chromium`` (``.ci/run`` installs it with apt)."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(f"no Chromium at {path}: install Debian's (apt-get install -y chromium) or set CHROMIUM_PATH")
    return path


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop on this thread while it runs; the tests' own ORM calls (and
    # pytest-django's flushes) are still synchronous, so Django's async-safety check is lifted meanwhile.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def web_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """Django's threaded live server on 127.0.0.1 (port ``GHOSTCRM_TEST_WEB_PORT``, default any free one)."""
    with django_db_blocker.unblock():
        thread = LiveServerThread(
            "127.0.0.1", StaticFilesHandler, port=int(os.environ.get("GHOSTCRM_TEST_WEB_PORT", 0))
        )
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        try:
            yield f"http://127.0.0.1:{thread.port}"
        finally:
            thread.terminate()


@pytest.fixture(scope="package")
def provisioning_worker(django_db_setup: None) -> Iterator[None]:
    """One real RQ worker process for this folder (queues ``provisioning`` and ``default``), stopped before the
    rest of the suite runs its own burst workers on the same queues."""
    django_rq.get_connection("provisioning").flushdb()
    worker = start_worker("provisioning", "default", env=app_env(), name="browser-worker")
    try:
        yield
    finally:
        stop(worker)


@pytest.fixture(autouse=True)
def _browser_settings(settings: Any, web_server: str) -> None:
    settings.SITE_URL = web_server  # links in e-mails point at the live server


@dataclass
class PageWatch:
    """What went wrong on the pages of one browser context; the test fails at teardown if anything did."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        # "Failed to load resource" repeats an HTTP error the response handler already reports with its URL.
        if message.type in ("error", "warning") and "Failed to load resource" not in message.text:
            self.problems.append(f"console {message.type} on {message.location.get('url')}: {message.text}")

    def _failed(self, request: Request) -> None:
        self.problems.append(f"request failed: {request.method} {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:  # (API calls made through the context's request client are not pages)
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")


@dataclass
class Session:
    """One browser context (a person at their own browser) with its page and watcher."""

    context: BrowserContext
    page: Page
    watch: PageWatch
    base: str

    def go(self, path: str) -> Response | None:
        return self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def open_session(chromium: Browser, web_server: str) -> Iterator[Any]:
    """Opens browser contexts at 1366 x 900 (the narrow laptop width); each is checked and closed at teardown."""
    opened: list[Session] = []

    def make() -> Session:
        context = chromium.new_context(viewport={"width": 1366, "height": 900}, base_url=web_server)
        context.set_default_timeout(15_000)
        page = context.new_page()
        watch = PageWatch()
        watch.attach(page)
        session = Session(context=context, page=page, watch=watch, base=web_server)
        opened.append(session)
        return session

    yield make
    problems = [problem for session in opened for problem in session.watch.problems]
    for session in opened:
        session.context.close()
    assert not problems, "the browser saw problems:\n" + "\n".join(problems)


def totp_for(device: Any) -> pyotp.TOTP:
    """A pyotp generator for a django-otp ``TOTPDevice`` (whose key is hex; pyotp wants base32)."""
    return pyotp.TOTP(base64.b32encode(bytes.fromhex(device.key)).decode())


def next_code(totp: pyotp.TOTP) -> str:
    """A code that has not been used yet: django-otp accepts each time step once and tolerates one step of drift,
    so the next step's code is valid now and later than any code already used."""
    return totp.at(time.time() + totp.interval)


@pytest.fixture
def admin_with_totp(django_user_model: Any) -> tuple[Any, pyotp.TOTP]:
    """A super admin with a confirmed authenticator whose codes the test can compute."""
    user = django_user_model.objects.create_superuser(
        email="root@ghostcrm.test", password=PASSWORD, first_name="Ada", last_name="Admin"
    )
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user, totp_for(device)


def sign_in(session: Session, email: str, totp: pyotp.TOTP, *, code: str | None = None) -> None:
    """The two sign-in steps: e-mail and password, then an authenticator code; ends on the admin index."""
    session.go("/admin/")
    session.page.get_by_label("E-mail address").fill(email)
    session.page.get_by_label("Password").fill(PASSWORD)
    session.page.get_by_role("button", name="Continue").click()
    session.page.wait_for_url("**/accounts/mfa/**")
    session.page.get_by_label("Code").fill(code or totp.now())
    session.page.get_by_role("button", name="Verify").click()
    session.page.wait_for_url(re.compile(r"/admin/$"))


@pytest.fixture
def admin_session(open_session: Any, admin_with_totp: tuple[Any, pyotp.TOTP]) -> Session:
    user, totp = admin_with_totp
    session: Session = open_session()
    sign_in(session, user.email, totp)
    return session


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.path)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)
