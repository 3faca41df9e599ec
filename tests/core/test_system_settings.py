"""Typed system settings: parsing, the admin's form errors, the service, and the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import Client
from django.urls import reverse

from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.core.errors import NotFound, ValidationError
from ghostcrm.core.models import SystemSetting
from ghostcrm.core.services import system_setting_reset, system_setting_set
from ghostcrm.core.system_settings import REGISTRY, SettingSpec, register, setting_value

ADD_URL = reverse("admin:core_systemsetting_add")
SPECS = (
    SettingSpec("tests.batch_size", int, 50, "Rows per batch.", min_value=1, max_value=500),
    SettingSpec("tests.enabled", bool, False, "Switch."),
    SettingSpec("tests.rate", Decimal, Decimal("0.20"), "A rate.", min_value=Decimal("0"), max_value=Decimal("1")),
    SettingSpec("tests.mode", str, "fast", "Mode.", choices=("fast", "safe")),
    SettingSpec("tests.names", list, [], "Names."),
)


@pytest.fixture(autouse=True)
def declared() -> Iterator[None]:
    register(*SPECS)
    yield
    for spec in SPECS:
        REGISTRY.pop(spec.key, None)


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("tests.batch_size", " 42 ", 42),
        ("tests.enabled", "Yes", True),
        ("tests.enabled", "off", False),
        ("tests.rate", "0.5", Decimal("0.5")),
        ("tests.mode", "safe", "safe"),
        ("tests.names", '["a", "b"]', ["a", "b"]),
    ],
)
def test_values_parse_to_their_type(key: str, raw: str, value: object) -> None:
    assert REGISTRY[key].parse(raw) == value


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("tests.batch_size", "many", "tests.batch_size expects a whole number; 'many' is not one."),
        ("tests.batch_size", "0", "tests.batch_size must be at least 1."),
        ("tests.batch_size", "501", "tests.batch_size must be at most 500."),
        ("tests.enabled", "maybe", "expects true or false"),
        ("tests.rate", "NaN", "expects a decimal number"),
        ("tests.rate", "1.5", "must be at most 1"),
        ("tests.mode", "slow", "tests.mode must be one of fast, safe."),
        ("tests.names", '{"a": 1}', "expects a JSON list"),
        ("integrations.enabled_providers", '["slack", "fax"]', "unknown providers fax"),
    ],
)
def test_bad_values_are_refused_with_a_sentence(key: str, raw: str, message: str) -> None:
    with pytest.raises(DjangoValidationError) as caught:
        REGISTRY[key].parse(raw)
    assert message in " ".join(caught.value.messages)


@pytest.mark.django_db
def test_setting_value_falls_back_to_the_default() -> None:
    assert setting_value("tests.batch_size") == 50
    system_setting_set(key="tests.batch_size", value=120, actor=Actor.system("tests"))
    assert setting_value("tests.batch_size") == 120
    system_setting_reset(key="tests.batch_size", actor=Actor.system("tests"))
    assert setting_value("tests.batch_size") == 50
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["system_setting.set", "system_setting.reset"]
    with pytest.raises(NotFound):
        system_setting_reset(key="tests.batch_size", actor=Actor.system("tests"))


@pytest.mark.django_db
def test_service_refuses_bad_values_and_unknown_keys_writing_nothing() -> None:
    with pytest.raises(ValidationError, match="must be at most 500") as caught:
        system_setting_set(key="tests.batch_size", value="900", actor=Actor.system("tests"))
    assert caught.value.extra["fields"] == {"value": ["tests.batch_size must be at most 500."]}
    with pytest.raises(ValidationError, match="'nope' is not a known system setting"):
        system_setting_set(key="nope", value="1", actor=Actor.system("tests"))
    assert not SystemSetting.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_service_records_before_and_after(super_admin: object) -> None:
    system_setting_set(key="tests.mode", value="safe", actor=Actor.for_user(super_admin))
    system_setting_set(key="tests.mode", value="fast", actor=Actor.for_user(super_admin))
    first, second = AuditEvent.objects.filter(action="system_setting.set").order_by("id")
    assert first.before is None and first.after["value"] == "safe"
    assert second.before["value"] == "safe" and second.after["value"] == "fast"
    assert second.actor_label == "root@ghostcrm.test"
    assert SystemSetting.objects.get(key="tests.mode").updated_by == super_admin


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tests.batch_size", "lots", "tests.batch_size expects a whole number"),
        ("tests.batch_size", "0", "tests.batch_size must be at least 1."),
        ("tests.mode", "slow", "tests.mode must be one of fast, safe."),
        ("tests.unknown", "1", "Select a valid choice."),
    ],
)
def test_admin_add_shows_form_errors(admin_session: Client, key: str, value: str, message: str) -> None:
    response = admin_session.post(ADD_URL, {"key": key, "value": value, "_save": "Save"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not SystemSetting.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_admin_add_and_change_store_normalised_values_and_are_audited(admin_session: Client) -> None:
    response = admin_session.post(ADD_URL, {"key": "tests.enabled", "value": " YES ", "_save": "Save"})
    assert response.status_code == 302
    setting = SystemSetting.objects.get(key="tests.enabled")
    assert setting.value == "true" and setting_value("tests.enabled") is True
    assert setting.updated_by is not None and setting.updated_by.email == "root@ghostcrm.test"
    # One event per admin add, change or delete: the service's, with the admin as actor.
    added = AuditEvent.objects.get(action="system_setting.set")
    assert added.after["value"] == "true" and added.before is None
    assert added.actor_label == "root@ghostcrm.test"

    change = reverse("admin:core_systemsetting_change", args=[setting.pk])
    assert "Switch. Expects true or false; default false." in admin_session.get(change).content.decode()
    bad = admin_session.post(change, {"value": "perhaps", "_save": "Save"})
    assert bad.status_code == 200 and "expects true or false" in bad.content.decode()
    assert admin_session.post(change, {"value": "off", "_save": "Save"}).status_code == 302
    changed = AuditEvent.objects.filter(action="system_setting.set").latest("id")
    assert changed.before["value"] == "true" and changed.after["value"] == "false"

    delete = reverse("admin:core_systemsetting_delete", args=[setting.pk])
    assert admin_session.post(delete, {"post": "yes"}).status_code == 302
    deleted = AuditEvent.objects.get(action="system_setting.reset")
    assert deleted.before["value"] == "false"
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()
    assert setting_value("tests.enabled") is False


@pytest.mark.django_db
def test_admin_change_of_an_undeclared_key_is_a_form_error_not_a_crash(admin_session: Client) -> None:
    stale = SystemSetting.objects.create(key="retired.setting", value="1")
    change = reverse("admin:core_systemsetting_change", args=[stale.pk])
    response = admin_session.post(change, {"value": "2", "_save": "Save"})
    assert response.status_code == 200
    assert "&#x27;retired.setting&#x27; is not a known system setting." in response.content.decode()
    stale.refresh_from_db()
    assert stale.value == "1"


@pytest.mark.django_db
def test_admin_list_reads_who_changed_each_setting_in_the_same_query(
    admin_session: Client, django_assert_max_num_queries: Any
) -> None:
    from ghostcrm.accounts.models import User

    url = reverse("admin:core_systemsetting_changelist")
    keys = ["provisioning.retention_days", "provisioning.stuck_after_minutes", "billing.invoice_due_days"]
    editor = User.objects.create_user(email="editor-0@ghostcrm.test", password="x" * 16)
    system_setting_set(key=keys[0], value="31", actor=Actor.for_user(editor))
    admin_session.get(url)  # warm the session and permission caches
    with django_assert_max_num_queries(1000) as one_row:
        assert admin_session.get(url).status_code == 200
    for n, key in enumerate(keys[1:], start=1):
        other = User.objects.create_user(email=f"editor-{n}@ghostcrm.test", password="x" * 16)
        system_setting_set(key=key, value="20", actor=Actor.for_user(other))
    with django_assert_max_num_queries(len(one_row.captured_queries)):
        page = admin_session.get(url)
    assert all(f"editor-{n}@ghostcrm.test" in page.content.decode() for n in range(3))


# --- The list of declared settings ------------------------------------------------------------------------

LIST_URL = reverse("admin:core_systemsetting_changelist")


def _declared_row(page: str, key: str) -> str:
    """The declared-settings table's row for ``key`` (the stored-rows list below has no data-key)."""
    match = re.search(rf'<tr class="(?:stored|default)" data-key="{re.escape(key)}">(.*?)</tr>', page, re.S)
    assert match is not None, f"no declared row for {key}"
    return match.group(1)


@pytest.mark.django_db
def test_admin_list_shows_every_declared_setting_with_its_default_before_any_override(admin_session: Client) -> None:
    page = admin_session.get(LIST_URL).content.decode()
    assert not SystemSetting.objects.exists()
    assert "<h1>System settings</h1>" in page
    for key in REGISTRY:
        _declared_row(page, key)
    row = _declared_row(page, "tests.batch_size")
    assert "a whole number" in row and "at least 1; at most 500" in row
    assert '<td class="value"><code>50</code>' in row and '<span class="source">default</span>' in row
    assert '<td class="default"><code>50</code></td>' in row and "Rows per batch." in row
    assert f'<a href="{ADD_URL}?key=tests.batch_size">Override</a>' in row
    assert "one of fast, safe" in _declared_row(page, "tests.mode")
    assert "<code>[]</code>" in _declared_row(page, "tests.names")


@pytest.mark.django_db
def test_admin_list_marks_overridden_values_and_links_to_their_change_page(admin_session: Client) -> None:
    system_setting_set(key="tests.mode", value="safe", actor=Actor.system("tests"))
    stored = SystemSetting.objects.get(key="tests.mode")
    page = admin_session.get(LIST_URL).content.decode()
    row = _declared_row(page, "tests.mode")
    assert '<td class="value"><code>safe</code>' in row and "overridden" in row
    assert '<td class="default"><code>fast</code></td>' in row
    change = reverse("admin:core_systemsetting_change", args=[stored.pk])
    assert f'<a href="{change}">Change</a>' in row and "Override" not in row
    # The stored rows stay listed below the declared table, with who changed them.
    assert page.index('id="declared-settings"') < page.index('id="result_list"')
    assert f'href="{change}"' in page[page.index('id="result_list"') :]


@pytest.mark.django_db
def test_admin_list_flags_a_stored_value_its_declaration_no_longer_accepts(admin_session: Client) -> None:
    SystemSetting.objects.create(key="tests.batch_size", value="900")  # stored before max_value became 500
    row = _declared_row(admin_session.get(LIST_URL).content.decode(), "tests.batch_size")
    assert "<code>900</code>" in row and "tests.batch_size must be at most 500." in row


@pytest.mark.django_db
def test_admin_list_escapes_declared_text_and_stored_values(admin_session: Client) -> None:
    register(SettingSpec("tests.markup", str, "<b>bold</b>", "Says <script>alert(1)</script> & more."))
    try:
        SystemSetting.objects.create(key="tests.mode", value="<img src=x onerror=alert(2)>")
        page = admin_session.get(LIST_URL).content.decode()
    finally:
        REGISTRY.pop("tests.markup", None)
    row = _declared_row(page, "tests.markup")
    assert "&lt;b&gt;bold&lt;/b&gt;" in row and "Says &lt;script&gt;alert(1)&lt;/script&gt; &amp; more." in row
    assert "<script>alert(1)" not in page and "<b>bold</b>" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in _declared_row(page, "tests.mode")
    assert "<img src=x" not in page


@pytest.mark.django_db
def test_admin_list_search_narrows_the_declared_table_too(admin_session: Client) -> None:
    page = admin_session.get(LIST_URL, {"q": "BATCH"}).content.decode()
    _declared_row(page, "tests.batch_size")
    assert 'data-key="tests.mode"' not in page
    assert "No declared setting matches" in admin_session.get(LIST_URL, {"q": "zzz-none"}).content.decode()


@pytest.mark.django_db
def test_add_form_preselects_the_key_and_starts_from_the_default(admin_session: Client) -> None:
    page = admin_session.get(ADD_URL, {"key": "tests.batch_size"}).content.decode()
    assert '<option value="tests.batch_size" selected>' in page
    assert re.search(r'<textarea name="value"[^>]*>\s*50</textarea>', page)
    assert "Rows per batch. Expects a whole number; default 50." in page
    # Unknown keys preselect nothing and are refused on save as before.
    unknown = admin_session.get(ADD_URL, {"key": "nope"}).content.decode()
    select = re.search(r'<select name="key".*?</select>', unknown, re.S)
    assert select is not None and " selected" not in select.group(0)
    response = admin_session.post(f"{ADD_URL}?key=tests.batch_size", {"key": "tests.batch_size", "value": "70"})
    assert response.status_code == 302 and setting_value("tests.batch_size") == 70
    assert AuditEvent.objects.get(action="system_setting.set").after["value"] == "70"


@pytest.mark.django_db
def test_override_link_of_a_setting_stored_meanwhile_opens_its_change_page(admin_session: Client) -> None:
    system_setting_set(key="tests.enabled", value=True, actor=Actor.system("tests"))
    stored = SystemSetting.objects.get(key="tests.enabled")
    response = admin_session.get(ADD_URL, {"key": "tests.enabled"})
    assert response.status_code == 302
    assert response.url == reverse("admin:core_systemsetting_change", args=[stored.pk])


@pytest.mark.django_db
def test_read_only_roles_see_the_declared_table_without_override_links(client: Client) -> None:
    from ghostcrm.accounts.models import Role, User
    from tests.conftest import login_with_verified_otp

    support = User.objects.create_user(email="sam@ghostcrm.test", password="x" * 16, role=Role.SUPPORT)
    system_setting_set(key="tests.mode", value="safe", actor=Actor.system("tests"))
    stored = SystemSetting.objects.get(key="tests.mode")
    page = login_with_verified_otp(client, support).get(LIST_URL).content.decode()
    assert "Override" not in _declared_row(page, "tests.batch_size")
    assert f'<a href="{reverse("admin:core_systemsetting_change", args=[stored.pk])}">View</a>' in page
