"""The API's documentation pages load every asset from this server (drf-spectacular-sidecar), none from outside."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db
URL_IN_PAGE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?([^"')]+)""")


@pytest.mark.parametrize("path", ["/api/redoc/", "/api/docs/"])
def test_docs_pages_reference_only_local_assets(path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert not re.search(r"(?:https?:)?//(?!testserver\b)[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE), page
    urls = [a or b for a, b in URL_IN_PAGE.findall(page)]
    assert urls, page  # the page does load its assets: they are local paths
    for url in urls:
        assert url.startswith("/"), url
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/").split("?")[0]), f"{url} is not a local static file"
