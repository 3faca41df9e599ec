"""Every registered admin: its pages load for a super admin, are refused to a non-staff user, and are audited.

Models are found from the admin registry itself, so a newly registered admin is tested without editing this
file. A model whose sample row cannot be made generically gets an entry in SAMPLES.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group
from django.db import models, router
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
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


def assert_banner(response: HttpResponse, environment: str | None = None) -> None:
    environment = environment or settings.GHOSTCRM_ENV
    page = response.content.decode()
    where = response.request["PATH_INFO"]
    assert f'data-environment="{environment}"' in page, where
    assert f"background: {BANNER_COLOURS[environment]}" in page, where
    assert f"{environment} environment" in page, where


def _routes(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield prefix + str(pattern.pattern), namespace + pattern.name


# Argument-free pages of the admin (dashboards, RQ's pages, custom admin views) and of the sign-in area;
# pages with an object in their address are covered per model above. Not pages: JSON, scripts, the POST-only
# sign-out.
NOT_PAGES = {"admin:jsi18n", "admin:autocomplete", "admin:logout", "admin:django_rq_home_json", "django_rq:home_json"}
# django-rq serves Prometheus text there once prometheus_client is installed (operations' /metrics needs it).
NOT_PAGES |= {"admin:django_rq_metrics", "django_rq:metrics"}
STAFF_PAGES = sorted(
    name
    for route, name in _routes(get_resolver().url_patterns)
    if route.startswith(("admin/", "accounts/")) and "<" not in route and "(?P" not in route
    and name not in NOT_PAGES
)  # fmt: skip


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
    assert_banner(changelist)

    add = admin_session.get(admin_url(model, "add"))
    assert add.status_code == (200 if model_admin.has_add_permission(request) else 403)
    if add.status_code == 200:
        assert_banner(add)

    if not model._meta.managed:
        return  # no table (e.g. a dashboard link): there is no object to change
    obj = model_admin.get_queryset(request).first() or sample_object(model, super_admin)
    change = admin_session.get(admin_url(model, "change", quote(obj.pk)))
    assert change.status_code == 200, change.content.decode()[:500]
    assert_banner(change)
    history = admin_session.get(admin_url(model, "history", quote(obj.pk)))
    assert history.status_code == 200
    assert_banner(history)


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
def test_the_environment_banner_has_a_colour_per_environment(admin_session: Client, environment: str) -> None:
    with override_settings(GHOSTCRM_ENV=environment):
        for url in (reverse("admin:index"), admin_url(Group, "changelist"), admin_url(Group, "add")):
            assert_banner(admin_session.get(url), environment)
    assert len(set(BANNER_COLOURS.values())) == 3


@pytest.mark.django_db(databases=["default", "tenants"])
@override_settings(GHOSTCRM_ENV="production")
def test_every_admin_and_sign_in_page_shows_the_environment_banner(admin_session: Client) -> None:
    assert len(STAFF_PAGES) > 40 and "admin:tenants_provisioning_dashboard" in STAFF_PAGES
    shown = []
    for name in STAFF_PAGES:
        response = admin_session.get(reverse(name), follow=True)
        if response.status_code in (403, 405):  # an add page of a read-only model; a POST-only form target
            continue
        assert response.status_code == 200, (name, response.status_code)
        assert response["Content-Type"].startswith("text/html"), name
        assert_banner(response)
        shown.append(name)
    assert len(shown) > 30 and {"django_rq:home", "admin:billing_revenuedashboard_changelist"} <= set(shown)

    # Signed out: the sign-in page (the admin's own login address leads there) and an invitation link.
    anonymous = Client()
    for url in (reverse("admin:login"), reverse("accounts:login"), reverse("accounts:invitation", args=["nope"])):
        response = anonymous.get(url, follow=True)
        assert response.status_code in (200, 404), url
        assert_banner(response)


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
    selection = {"action": "delete_selected", "_selected_action": [g.pk for g in groups]}
    # The confirmation page changes nothing and records nothing.
    assert admin_session.post(admin_url(Group, "changelist"), selection).status_code == 200
    assert not AuditEvent.objects.filter(action__startswith="admin.").exists()

    response = admin_session.post(admin_url(Group, "changelist"), {**selection, "post": "yes"})
    assert response.status_code == 302
    deleted = AuditEvent.objects.filter(action="admin.delete")
    assert sorted(e.before["name"] for e in deleted) == ["Team 0", "Team 1", "Team 2"]
    ran = AuditEvent.objects.get(action="admin.action")
    assert ran.actor_label == "root@ghostcrm.test" and ran.target_type == "auth.group" and ran.request_id
    assert ran.after == {"action": "delete_selected", "count": 3, "ids": sorted(str(g.pk) for g in groups)}
    assert ran.message == "Delete selected groups (3 groups)"


@pytest.mark.django_db
def test_every_admin_action_run_is_recorded_with_its_admin(admin_session: Client, super_admin: User) -> None:
    """Custom actions too, whatever their service records: here unlocking a user through the user admin."""
    user = User.objects.create_user(email="locked@ghostcrm.test", password="x" * 16)
    response = admin_session.post(admin_url(User, "changelist"), {"action": "unlock", "_selected_action": [user.pk]})
    assert response.status_code == 302
    ran = AuditEvent.objects.get(action="admin.action")
    assert ran.actor_id == str(super_admin.pk) and ran.target_id == str(user.pk)
    assert ran.after == {"action": "unlock", "count": 1, "ids": [str(user.pk)]}
    assert ran.message.endswith("(1 user)")


@pytest.mark.django_db
def test_support_staff_may_view_but_not_manage_accounts(client: Client) -> None:
    support = User.objects.create_user(email="desk@ghostcrm.test", password="x" * 16, role=Role.SUPPORT)
    login_with_verified_otp(client, support)
    assert client.get(admin_url(User, "changelist")).status_code == 200
    assert client.get(admin_url(User, "add")).status_code == 403
    assert client.get(admin_url(SystemSetting, "add")).status_code == 403


@pytest.mark.django_db
def test_inline_rows_added_changed_and_deleted_are_audited(admin_session: Client) -> None:
    """The plan page edits its price tiers inline: each tier row gets its own event with before/after."""
    from billing.models import Plan, PlanTier
    from tests.billing.conftest import make_plan

    plan = make_plan("team", 0, scheme="tiered", tiers_mode="volume", tiers=[(10, 1250, 0), (None, 999, 0)])
    url = admin_url(Plan, "change", plan.pk)

    def form(rows: list[dict[str, Any]], initial: int) -> dict[str, Any]:
        data = {
            "code": plan.code, "name": plan.name, "product": plan.product_id, "active": "on", "currency": "EUR",
            "interval": plan.interval, "scheme": "tiered", "price": "0", "tiers_mode": "volume", "trial_days": "0",
            "tiers-TOTAL_FORMS": str(len(rows)), "tiers-INITIAL_FORMS": str(initial), "tiers-MIN_NUM_FORMS": "0",
            "tiers-MAX_NUM_FORMS": "1000",
        }  # fmt: skip
        for i, row in enumerate(rows):
            data |= {f"tiers-{i}-{name}": value for name, value in row.items()} | {f"tiers-{i}-plan": plan.pk}
        return data

    bounded, unbounded = plan.tiers.get(up_to=10), plan.tiers.get(up_to__isnull=True)
    rows = [
        {"id": bounded.pk, "up_to": "10", "unit_price": "11.00", "flat_fee": "0"},
        {"id": unbounded.pk, "up_to": "", "unit_price": "9.99", "flat_fee": "0"},
        {"up_to": "20", "unit_price": "10.50", "flat_fee": "0"},
    ]
    response = admin_session.post(url, form(rows, initial=2))
    assert response.status_code == 302, response.content.decode()[:2000]
    added_tier = PlanTier.objects.get(plan=plan, up_to=20)
    added = AuditEvent.objects.get(action="admin.add", target_type="billing.plantier")
    assert added.target_id == str(added_tier.pk) and added.after["unit_amount"] == 1050
    changed = AuditEvent.objects.get(action="admin.change", target_type="billing.plantier")
    assert changed.target_id == str(bounded.pk)
    assert (changed.before["unit_amount"], changed.after["unit_amount"]) == (1250, 1100)
    assert not AuditEvent.objects.filter(target_type="billing.plantier", target_id=str(unbounded.pk)).exists()

    rows[2] = {"id": added_tier.pk, "up_to": "20", "unit_price": "10.50", "flat_fee": "0", "DELETE": "on"}
    assert admin_session.post(url, form(rows, initial=3)).status_code == 302
    assert not PlanTier.objects.filter(pk=added_tier.pk).exists()
    deleted = AuditEvent.objects.get(action="admin.delete", target_type="billing.plantier")
    assert deleted.target_id == str(added_tier.pk)
    assert deleted.before["up_to"] == 20 and deleted.after is None
