"""The root address, the site icon, and how a refused request is logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def test_the_root_address_leads_to_the_admin_not_a_debug_page(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/", follow=True).status_code == 200  # the sign-in page, for a visitor signed out
    assert client.post("/").status_code == 405


def test_the_site_icon_is_served_to_anyone(client: Client) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert "max-age=86400" in response["Cache-Control"]
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert body[:4] == b"\x00\x00\x01\x00"  # an ICO file


LOG_A_403 = """
import django, logging
django.setup()
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.utils.log import log_response
from django.http import HttpResponseForbidden
try:
    raise PermissionDenied("not yours")
except PermissionDenied as exc:
    log_response("Forbidden (Permission denied): %s", "/x/", response=HttpResponseForbidden(),
                 request=RequestFactory().get("/x/"), exception=exc)
try:
    raise ValueError("a real fault")
except ValueError as exc:
    logging.getLogger("django.request").error("Internal Server Error: /y/", exc_info=exc, extra={"status_code": 500})
"""


def test_a_403_is_one_log_line_and_a_500_keeps_its_one_traceback() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ghostcrm.settings", "GHOSTCRM_ENV": "development", "DEBUG": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LOG_A_403], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stderr.strip().splitlines()
    assert sum("Forbidden (Permission denied): /x/" in line for line in lines) == 1
    assert "PermissionDenied" not in result.stderr
    assert result.stderr.count("Traceback") == 1
    assert result.stderr.count("ValueError: a real fault") == 1
