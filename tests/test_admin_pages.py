"""Every registered admin: its pages load for a super admin, are refused to a non-staff user, and are audited.

Models are found from the admin registry itself, so a newly registered admin is tested without editing this
file. A model whose sample row cannot be made generically gets an entry in SAMPLES.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.db import models, router
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone

from ghostcrm.accounts.models import Role, User
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor, audit_record
from ghostcrm.core.admin_base import AuditedModelAdmin
from ghostcrm.core.context_processors import BANNER_COLOURS
from ghostcrm.core.models import SystemSetting
from ghostcrm.integrations.services import integration_preference_set
from tests.conftest import login_with_verified_otp
from tests.integrations.conftest import make_organization

REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _sample_integration(admin_user: User) -> models.Model:
    return integration_preference_set(
        organization_id=make_organization().pk, provider="zapier", actor=Actor.system("tests")
    )


# Rows that generic filling cannot make (a service owns their creation, or a value must follow a rule).
SAMPLES: dict[str, Callable[[User], models.Model]] = {
    "accounts.user": lambda admin_user: admin_user,
    "audit.auditevent": lambda admin_user: audit_record(action="tests.sample", actor=Actor.for_user(admin_user)),
    "core.systemsetting": lambda admin_user: SystemSetting.objects.create(
        key="integrations.enabled_providers", value='["slack"]'
    ),
    "integrations.integrationpreference": _sample_integration,
    "tenants.organization": lambda admin_user: make_organization(),
}


def _value_for(field: models.Field, admin_user: User) -> Any:
    token = uuid.uuid4().hex
    if field.choices:
        return field.flatchoices[0][0]
    if isinstance(field, models.ForeignKey):
        related = field.related_model
        return admin_user if related is User else sample_object(related, admin_user)  # type: ignore[arg-type]
    if isinstance(field, models.EmailField):
        return f"sample-{token[:8]}@example.com"
    if isinstance(field, models.GenericIPAddressField):
        return "192.0.2.1"
    if isinstance(field, models.URLField):
        return f"https://example.com/{token[:8]}"
    if isinstance(field, models.CharField | models.TextField):
        return f"sample-{token}"[: field.max_length or 40]
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.IntegerField | models.PositiveIntegerField):
        return 1
    if isinstance(field, models.DecimalField):
        return Decimal("1")
    if isinstance(field, models.FloatField):
        return 1.0
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.DateField):
        return dt.date.today()
    if isinstance(field, models.DurationField):
        return dt.timedelta(minutes=1)
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.BinaryField):
        return b""
    raise LookupError(f"no sample value for {field.model._meta.label}.{field.name} ({type(field).__name__})")


def sample_object(model: type[models.Model], admin_user: User) -> models.Model:
    """One saved row of ``model``: from SAMPLES, else with every required field filled generically."""
    label = model._meta.label_lower
    if label in SAMPLES:
        return SAMPLES[label](admin_user)
    values = {}
    for field in model._meta.concrete_fields:
        if field.primary_key and (field.has_default() or isinstance(field, models.AutoField)):
            continue
        if field.has_default() or field.null or getattr(field, "auto_now", False):
            continue
        if getattr(field, "auto_now_add", False) or (field.blank and field.empty_strings_allowed):
            continue
        values[field.name] = _value_for(field, admin_user)
    obj = model(**values)
    obj.save(using=router.db_for_write(model))
    return obj


def databases_for(model: type[models.Model]) -> list[str]:
    return ["default", settings.TENANT_DB_ALIAS] if router.db_for_write(model) != "default" else ["default"]


def admin_params() -> list[Any]:
    return [
        pytest.param(model, id=model._meta.label_lower, marks=pytest.mark.django_db(databases=databases_for(model)))
        for model, _ in REGISTRY
    ]


def admin_url(model: type[models.Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_every_registered_admin_is_audited() -> None:
    assert REGISTRY, "the admin registry is empty"
    not_audited = [
        model._meta.label for model, model_admin in REGISTRY if not isinstance(model_admin, AuditedModelAdmin)
    ]
    assert not_audited == []


@pytest.mark.parametrize("model", admin_params())
def test_admin_pages_load_for_a_super_admin(
    admin_session: Client, super_admin: User, model: type[models.Model]
) -> None:
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = super_admin

    # Followed: an entry that stands for a dashboard redirects to it, and that page must load too.
    changelist = admin_session.get(admin_url(model, "changelist"), follow=True)
    assert changelist.status_code == 200, changelist.content.decode()[:500]
    assert changelist.request["PATH_INFO"].startswith("/admin/")

    add = admin_session.get(admin_url(model, "add"))
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)

    if not model._meta.managed:
        return  # no table (e.g. a dashboard link): there is no object to change
    obj = model_admin.get_queryset(request).first() or sample_object(model, super_admin)
    change = admin_session.get(admin_url(model, "change", quote(obj.pk)))
    assert change.status_code == 200, change.content.decode()[:500]
    history = admin_session.get(admin_url(model, "history", quote(obj.pk)))
    assert history.status_code == 200


@pytest.mark.parametrize("model", admin_params())
def test_admin_pages_are_refused_to_a_non_staff_user(
    client: Client, super_admin: User, model: type[models.Model]
) -> None:
    outsider = User.objects.create_user(email="outsider@ghostcrm.test", password="x" * 16, is_staff=False)
    # Signed in with a verified second factor, so the refusal comes from the missing staff flag alone.
    login_with_verified_otp(client, outsider)
    urls = [admin_url(model, "changelist"), admin_url(model, "add")]
    if model._meta.managed:
        obj = admin.site._registry[model].get_queryset(RequestFactory().get("/")).first() or sample_object(
            model, super_admin
        )
        urls.append(admin_url(model, "change", quote(obj.pk)))
    for url in urls:
        response = client.get(url)
        assert response.status_code in (302, 403), url
        if response.status_code == 302:
            assert "login" in response["Location"], (url, response["Location"])


@pytest.mark.django_db
@pytest.mark.parametrize("environment", sorted(BANNER_COLOURS))
def test_every_admin_page_shows_the_environment_banner(admin_session: Client, environment: str) -> None:
    with override_settings(GHOSTCRM_ENV=environment):
        for url in (reverse("admin:index"), admin_url(Group, "changelist"), admin_url(Group, "add")):
            page = admin_session.get(url).content.decode()
            assert f'data-environment="{environment}"' in page, url
            assert f"background: {BANNER_COLOURS[environment]}" in page
            assert f"{environment} environment" in page
    assert len(set(BANNER_COLOURS.values())) == 3


@pytest.mark.django_db
def test_admin_add_change_and_delete_are_audited_with_before_and_after(admin_session: Client) -> None:
    assert admin_session.post(admin_url(Group, "add"), {"name": "Support desk", "_save": "Save"}).status_code == 302
    group = Group.objects.get(name="Support desk")
    added = AuditEvent.objects.get(action="admin.add")
    assert added.target_type == "auth.group" and added.target_id == str(group.pk)
    assert added.before is None and added.after["name"] == "Support desk"
    assert added.actor_label == "root@ghostcrm.test" and added.request_id

    change = admin_url(Group, "change", group.pk)
    assert admin_session.post(change, {"name": "Helpdesk", "_save": "Save"}).status_code == 302
    changed = AuditEvent.objects.get(action="admin.change")
    assert changed.before["name"] == "Support desk" and changed.after["name"] == "Helpdesk"

    assert admin_session.post(admin_url(Group, "delete", group.pk), {"post": "yes"}).status_code == 302
    deleted = AuditEvent.objects.get(action="admin.delete")
    assert deleted.before["name"] == "Helpdesk" and deleted.after is None
    assert not Group.objects.exists()


@pytest.mark.django_db
def test_bulk_delete_action_records_one_event_per_object(admin_session: Client) -> None:
    groups = [Group.objects.create(name=f"Team {i}") for i in range(3)]
    response = admin_session.post(
        admin_url(Group, "changelist"),
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )
    assert response.status_code == 302
    deleted = AuditEvent.objects.filter(action="admin.delete")
    assert sorted(e.before["name"] for e in deleted) == ["Team 0", "Team 1", "Team 2"]


@pytest.mark.django_db
def test_support_staff_may_view_but_not_manage_accounts(client: Client) -> None:
    support = User.objects.create_user(email="desk@ghostcrm.test", password="x" * 16, role=Role.SUPPORT)
    login_with_verified_otp(client, support)
    assert client.get(admin_url(User, "changelist")).status_code == 200
    assert client.get(admin_url(User, "add")).status_code == 403
    assert client.get(admin_url(SystemSetting, "add")).status_code == 403
