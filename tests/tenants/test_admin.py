"""Admin: add an organisation, lifecycle actions with confirmation, operations inline, dashboard, service keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Customer, Subscription
from ghostcrm.audit.models import AuditEvent
from ghostcrm.audit.services import Actor
from ghostcrm.organizations.models import Organization
from tenants import services
from tenants.admin_display import time_to_active_chart
from tenants.keys import KEY_RE, service_key_create
from tenants.models import Operation, ServiceKey
from tenants.selectors import percentile, provisioning_dashboard
from tests.tenants.factories import OperationFactory, OrganizationFactory, PlanFactory

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:organizations_organization_changelist")
ADD = reverse("admin:organizations_organization_add")
DASHBOARD = reverse("admin:tenants_provisioning_dashboard")


@pytest.fixture(autouse=True)
def _redis(redis_conn: Any) -> None:
    """The dashboard reads the provisioning queue."""


def _org(name: str = "ACME Corp", **updates: Any) -> Organization:
    organization = services.organization_request(name=name, admin_email="admin@acme.test", actor=Actor.system("t"))
    if updates:
        Organization.objects.filter(pk=organization.pk).update(**updates)
        organization.refresh_from_db()
    return organization


def test_adding_an_organisation_starts_provisioning_through_the_service(admin_session: Any) -> None:
    PlanFactory(code="pro", unit_amount=9_000)
    response = admin_session.post(ADD, {"name": "ACME Corp", "admin_email": "Admin@ACME.test", "plan_code": "pro"})
    assert response.status_code == 302, response.content
    organization = Organization.objects.get()
    assert (organization.slug, organization.admin_email, organization.status, organization.plan_code) == (
        "acme-corp",
        "admin@acme.test",
        "pending",
        "pro",
    )
    assert Operation.objects.filter(organization=organization, step="request").count() == 1
    event = AuditEvent.objects.get(action="organization.request")
    assert event.actor_label == "root@ghostcrm.test"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "Public", "admin_email": "a@b.test"}, "name", "reserved"),
        ({"name": "ACME", "admin_email": "not-an-email"}, "admin_email", "valid"),
        ({"name": "", "admin_email": "a@b.test"}, "name", "required"),
    ],
)
def test_bad_input_shows_field_errors_and_creates_nothing(
    admin_session: Any, data: dict[str, str], field: str, message: str
) -> None:
    response = admin_session.post(ADD, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in " ".join(errors[field]).lower()
    assert not Organization.objects.exists()


def test_the_plan_is_a_choice_of_active_plans_and_an_unknown_code_is_a_field_error(admin_session: Any) -> None:
    PlanFactory(code="basic", unit_amount=3_000)
    PlanFactory(code="pro", unit_amount=9_000)
    retired = PlanFactory(code="legacy", unit_amount=1_000)
    retired.active = False
    retired.save()
    form = admin_session.get(ADD).context["adminform"].form
    assert list(form.fields["plan_code"].choices) == [("", "No plan"), ("basic", "Basic (basic)"), ("pro", "Pro (pro)")]
    for code in ("gold", "legacy"):
        response = admin_session.post(ADD, {"name": "ACME Corp", "admin_email": "a@acme.test", "plan_code": code})
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["plan_code"] == [
            f"There is no active billing plan with the code {code!r}; use one of: basic, pro."
        ]
    assert not Organization.objects.exists()
    assert (
        admin_session.post(ADD, {"name": "ACME Corp", "admin_email": "a@acme.test", "plan_code": ""}).status_code == 302
    )
    assert Organization.objects.get().plan_code == ""


def test_the_admin_says_client_organisation_in_titles_links_and_columns(admin_session: Any) -> None:
    assert (Organization._meta.verbose_name, Organization._meta.verbose_name_plural) == (
        "client organisation",
        "client organisations",
    )
    assert ">Client organisations<" in admin_session.get(reverse("admin:index")).content.decode()
    assert "<title>Add client organisation |" in admin_session.get(ADD).content.decode()
    _org()
    changelist = admin_session.get(CHANGELIST).content.decode()
    assert "Select client organisation to change" in changelist
    assert "1 client organisation" in changelist
    operations = admin_session.get(reverse("admin:tenants_operation_changelist")).content.decode()
    assert ">Client organisation<" in operations
    assert "Organization" not in operations


def test_a_duplicate_name_for_another_admin_is_the_services_conflict(admin_session: Any) -> None:
    _org()
    response = admin_session.post(ADD, {"name": "acme corp", "admin_email": "x@acme.test"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["name"] == ["An organisation named 'ACME Corp' already exists."]
    assert Organization.objects.count() == 1


def test_the_same_client_asked_again_opens_the_existing_organisation_as_the_api_returns_it(
    admin_session: Any,
) -> None:
    existing = _org()
    events = AuditEvent.objects.count()
    response = admin_session.post(ADD, {"name": "ACME Corp", "admin_email": "admin@acme.test"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:organizations_organization_change", args=[existing.pk])
    assert Organization.objects.count() == 1
    assert AuditEvent.objects.count() == events  # nothing new happened, so nothing new is recorded
    page = admin_session.get(response["Location"]).content.decode()
    assert "was already requested for admin@acme.test" in page


def test_adding_an_organisation_in_the_admin_writes_exactly_one_audit_event(admin_session: Any) -> None:
    assert admin_session.post(ADD, {"name": "ACME Corp", "admin_email": "a@acme.test"}).status_code == 302
    assert list(AuditEvent.objects.values_list("action", "actor_label")) == [
        ("organization.request", "root@ghostcrm.test")
    ]


def test_organisation_and_operation_pages_have_no_save_button_and_offer_the_status_actions(
    admin_session: Any,
) -> None:
    failed = _org(status="failed", last_error="bad template")
    page = admin_session.get(reverse("admin:organizations_organization_change", args=[failed.pk])).content.decode()
    assert 'name="_save"' not in page
    assert 'name="_continue"' not in page
    assert 'value="retry_selected"' in page
    assert 'value="deprovision_selected"' in page
    assert 'value="suspend_selected"' not in page
    operation = Operation.objects.get(organization=failed, step="request")
    page = admin_session.get(reverse("admin:tenants_operation_change", args=[operation.pk])).content.decode()
    assert 'name="_save"' not in page
    assert f"Open {failed.name}" in page
    assert 'value="retry_selected"' in page
    assert f'name="_selected_action" value="{failed.pk}"' in page  # the button acts on the organisation


def test_the_plan_column_shows_the_live_subscriptions_plan(admin_session: Any) -> None:
    PlanFactory(code="pro", unit_amount=9_000)
    subscribed = OrganizationFactory(name="ACME Corp", status="active")
    OrganizationFactory(name="Globex", status="active")
    customer = Customer.objects.create(organization=subscribed, email="billing@acme.test")
    now = timezone.now()
    Subscription.objects.create(
        customer=customer,
        plan=PlanFactory(code="growth", unit_amount=20_000),
        status="active",
        billing_cycle_anchor=now,
        current_period_start=now,
        current_period_end=now + dt.timedelta(days=30),
    )
    page = admin_session.get(CHANGELIST).content.decode()
    rows = {row.split("</th>")[0]: row for row in page.split('<th class="field-name">')[1:]}
    acme = next(row for name, row in rows.items() if "ACME Corp" in name)
    globex = next(row for name, row in rows.items() if "Globex" in name)
    assert '<td class="field-plan">Growth</td>' in acme
    assert '<td class="field-plan">-</td>' in globex


def test_the_operations_error_column_is_cut_with_the_whole_error_as_a_tooltip(admin_session: Any) -> None:
    long_error = "relation crm_contacts does not exist " * 10
    OperationFactory(step="templates", outcome="failure", error=long_error)
    page = admin_session.get(reverse("admin:tenants_operation_changelist")).content.decode()
    assert f'title="{long_error}"' in page
    assert "gc-truncated" in page
    assert "field-job_id" not in page  # columns chosen for a 1366 px screen


def test_changelist_shows_badges_plan_and_time_to_active_and_filters(admin_session: Any) -> None:
    now = timezone.now()
    _org(status="active", plan_code="pro", created_at=now - dt.timedelta(seconds=42), activated_at=now)
    _org("Globex", status="failed", last_error="boom")
    page = admin_session.get(CHANGELIST).content.decode()
    assert 'data-status="active"' in page
    assert 'data-status="failed"' in page
    assert "pro" in page
    filtered = admin_session.get(CHANGELIST, {"status__exact": "failed"}).content.decode()
    assert "Globex" in filtered
    assert "ACME Corp" not in filtered
    assert "Globex" in admin_session.get(CHANGELIST, {"q": "globex"}).content.decode()


def test_lifecycle_action_asks_for_confirmation_then_calls_the_service(admin_session: Any) -> None:
    organization = _org(status="failed", last_error="boom")
    data = {"action": "retry_selected", "_selected_action": [str(organization.pk)]}
    confirm = admin_session.post(CHANGELIST, data)
    assert confirm.status_code == 200
    assert b"Provisioning starts again" in confirm.content
    organization.refresh_from_db()
    assert organization.status == "failed"  # nothing happened yet
    done = admin_session.post(CHANGELIST, {**data, "confirm": "yes", "reason": "template fixed"})
    assert done.status_code == 302
    organization.refresh_from_db()
    assert organization.status == "pending"
    assert Operation.objects.get(organization=organization, step="retry").message == "template fixed"


def test_a_refused_action_shows_the_reason(admin_session: Any) -> None:
    organization = _org()
    data = {"action": "resume_selected", "_selected_action": [str(organization.pk)], "confirm": "yes"}
    response = admin_session.post(CHANGELIST, data, follow=True)
    assert "cannot become active" in response.content.decode()
    organization.refresh_from_db()
    assert organization.status == "pending"


def test_change_page_shows_operations_inline_with_durations_and_errors(admin_session: Any) -> None:
    organization = _org()
    services.organization_transition(organization_id=organization.pk, to_status="provisioning", actor=Actor.system("t"),
                                     step="provision")  # fmt: skip
    services.organization_transition(organization_id=organization.pk, to_status="failed", actor=Actor.system("t"),
                                     step="fail", error="001_client_schema_template.pgsql failed")  # fmt: skip
    page = admin_session.get(
        reverse("admin:organizations_organization_change", args=[organization.pk])
    ).content.decode()
    assert "001_client_schema_template.pgsql failed" in page
    assert "0 ms" in page
    assert "provision" in page


def test_dashboard_renders_counts_queue_chart_and_failures_with_retry(admin_session: Any) -> None:
    now = timezone.now()
    for i, seconds in enumerate([10, 20, 30, 40, 100]):
        activated = now - dt.timedelta(hours=1)
        _org(
            f"Client {i}", status="active", created_at=activated - dt.timedelta(seconds=seconds), activated_at=activated
        )
    failed = _org("Broken Co", status="failed", last_error="bad template", status_changed_at=now)
    index = admin_session.get(reverse("admin:index")).content.decode()
    assert reverse("admin:tenants_provisioningdashboard_changelist") in index
    assert admin_session.get(reverse("admin:tenants_provisioningdashboard_changelist")).url == DASHBOARD
    page = admin_session.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<svg class="gc-chart"' in html
    assert 'class="p95"' in html
    assert 'class="p50"' in html
    ends = [label["text"] for label in page.context["chart"]["labels"]]
    assert ends[-1] == f"{page.context['stats'].hourly[-1]['end']:%H:%M}"
    assert f">{ends[-1]}</text>" in html
    assert "bad template" in html
    assert reverse("admin:tenants_organization_retry", args=[failed.pk]) in html
    stats = page.context["stats"]
    assert stats.counts["active"] == 5
    assert stats.counts["failed"] == 1
    assert stats.activated_last_day == 5
    assert stats.p50_seconds == pytest.approx(30, abs=1)
    assert stats.p95_seconds == pytest.approx(88, abs=1)
    assert stats.queue["error"] == ""
    assert stats.queue["queued"] >= 0
    retried = admin_session.post(reverse("admin:tenants_organization_retry", args=[failed.pk]))
    assert retried.status_code == 302
    failed.refresh_from_db()
    assert failed.status == "pending"


def test_percentiles_and_chart_geometry() -> None:
    assert percentile([], 0.5) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile([5], 0.95) == 5
    start = timezone.now()
    end = start + dt.timedelta(hours=1)
    hourly = [{"start": start, "end": end, "count": 0, "p50": None, "p95": None} for _ in range(24)]
    hourly[3] = {"start": start, "end": end, "count": 2, "p50": 10.0, "p95": 20.0}
    chart = time_to_active_chart(hourly)
    assert [bar["series"] for bar in chart["bars"]] == ["p95", "p50"]
    p95, p50 = chart["bars"]
    assert p95["h"] == pytest.approx(2 * p50["h"])  # bar height is proportional to the value
    assert not chart["empty"]
    assert provisioning_dashboard().activated_last_day == 0


def test_the_chart_axis_marks_the_ends_of_the_rolling_hours_it_counts() -> None:
    """Buckets are the hours counted back from now (20:19 UTC here); each axis time is where a bucket ends."""
    now = dt.datetime(2026, 11, 24, 20, 19, tzinfo=dt.UTC)
    activations = {
        "Just now": now,  # the last bucket takes an activation at now itself
        "Last hour": now - dt.timedelta(minutes=49),  # 19:30, in 19:19-20:19
        "Tea time": dt.datetime(2026, 11, 24, 16, 10, tzinfo=dt.UTC),  # 15:19-16:19, bucket 19
        "Yesterday": now - dt.timedelta(hours=23, minutes=50),  # 20:29 yesterday, the first bucket
        "Too old": now - dt.timedelta(days=1, minutes=1),  # 20:18 yesterday, outside the day
    }
    for name, activated in activations.items():
        _org(name, status="active", created_at=activated - dt.timedelta(seconds=30), activated_at=activated)
    stats = provisioning_dashboard(now=now.astimezone(dt.timezone(dt.timedelta(hours=1))))  # any zone: UTC out
    hourly = stats.hourly
    assert [(b["start"], b["end"]) for b in (hourly[0], hourly[19], hourly[23])] == [
        (now - dt.timedelta(hours=24), now - dt.timedelta(hours=23)),
        (dt.datetime(2026, 11, 24, 15, 19, tzinfo=dt.UTC), dt.datetime(2026, 11, 24, 16, 19, tzinfo=dt.UTC)),
        (now - dt.timedelta(hours=1), now),
    ]
    assert all(b["start"].utcoffset() == dt.timedelta(0) for b in hourly)
    assert {i: b["count"] for i, b in enumerate(hourly) if b["count"]} == {0: 1, 19: 1, 23: 2}
    assert stats.activated_last_day == sum(b["count"] for b in hourly) == 4

    chart = time_to_active_chart(hourly)
    slot = (720 - 48 - 8) / 24
    # A time every fourth bucket end, counted back from the last (now), each on its bucket's right edge.
    assert [label["text"] for label in chart["labels"]] == ["00:19", "04:19", "08:19", "12:19", "16:19", "20:19"]
    assert [label["x"] for label in chart["labels"]] == [round(48 + (i + 1) * slot, 1) for i in (3, 7, 11, 15, 19, 23)]
    assert [label["anchor"] for label in chart["labels"]] == ["middle"] * 5 + ["end"]
    # The bars for 15:19-16:19 stand in the slot that ends at the 16:19 tick; the last bars end at 20:19.
    tea = [bar for bar in chart["bars"] if bar["title"].startswith("15:19-16:19 UTC")]
    assert len(tea) == 2
    assert all(48 + 19 * slot < bar["x"] < bar["x"] + bar["w"] < 48 + 20 * slot for bar in tea)
    assert chart["labels"][4]["x"] == round(48 + 20 * slot, 1)
    assert chart["bars"][-1]["title"] == "19:19-20:19 UTC: p50 30.0 s (2 active)"


def test_service_key_admin_shows_the_key_once_and_revokes(admin_session: Any) -> None:
    add = reverse("admin:tenants_servicekey_add")
    response = admin_session.post(add, {"name": "signup-site", "scopes": ["organizations:write"]}, follow=True)
    assert response.status_code == 200
    raw = response.context["raw_key"]
    assert KEY_RE.match(raw)
    assert raw in response.content.decode()
    key = ServiceKey.objects.get()
    assert key.scopes == "organizations:write"
    assert key.created_by is not None
    # Shown once: the change page shows only the prefix.
    page = admin_session.get(reverse("admin:tenants_servicekey_change", args=[key.pk])).content.decode()
    assert raw not in page
    assert f"gcrm_{key.prefix}_" in page
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/organizations/").status_code == 403  # write-only key
    admin_session.post(reverse("admin:tenants_servicekey_changelist"),
                       {"action": "revoke_selected", "_selected_action": [str(key.pk)]})  # fmt: skip
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client.get("/api/v1/organizations/").json()["code"] == "key_revoked"


def test_service_key_admin_refuses_bad_input(admin_session: Any) -> None:
    add = reverse("admin:tenants_servicekey_add")
    past = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    response = admin_session.post(add, {"name": "x", "scopes": ["organizations:read"], "expires_at_0": past,
                                        "expires_at_1": "00:00:00"})  # fmt: skip
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    response = admin_session.post(add, {"name": "x"})
    assert "scopes" in response.context["adminform"].form.errors
    assert not ServiceKey.objects.exists()


def _changelist_queries(admin_session: Any, url: str) -> int:
    with CaptureQueriesContext(connections["default"]) as queries:
        response = admin_session.get(url)
    assert response.status_code == 200
    return len(queries.captured_queries)


def _add_rows(start: int, count: int, super_admin: Any) -> None:
    for i in range(start, start + count):
        organization = _org(f"Client {i}", status="active", activated_at=timezone.now(), plan_code="pro")
        services.organization_transition(organization_id=organization.pk, to_status="suspended",
                                         actor=Actor.system("t"), step="suspend")  # fmt: skip
        service_key_create(name=f"key {i}", scopes=["organizations:read"], actor=Actor.system("t"),
                           created_by=super_admin)  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [CHANGELIST, reverse("admin:tenants_operation_changelist"), reverse("admin:tenants_servicekey_changelist")],
)
def test_admin_list_pages_run_a_fixed_number_of_queries(admin_session: Any, super_admin: Any, url: str) -> None:
    """No query per row: three rows or nine, the page costs the same."""
    _add_rows(0, 3, super_admin)
    few = _changelist_queries(admin_session, url)
    _add_rows(3, 6, super_admin)
    many = _changelist_queries(admin_session, url)
    assert many == few, f"{url}: {few} queries with 3 rows, {many} with 9"


def test_dashboard_percentiles_from_known_durations_overall_and_per_hour() -> None:
    """p50/p95 by linear interpolation over the last day; activations older than a day are left out."""
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    recent = now - dt.timedelta(minutes=10)  # in the last hourly bucket
    earlier = now - dt.timedelta(hours=5, minutes=10)
    durations = {recent: [60, 120, 180, 240], earlier: [600, 1200]}
    n = 0
    for activated, seconds_list in durations.items():
        for seconds in seconds_list:
            _org(f"Timed {n}", status="active", created_at=activated - dt.timedelta(seconds=seconds),
                 activated_at=activated)  # fmt: skip
            n += 1
    _org("Old", status="active", created_at=now - dt.timedelta(days=3), activated_at=now - dt.timedelta(days=2))
    _org("Never", status="failed")
    stats = provisioning_dashboard(now=now)
    everything = sorted([60, 120, 180, 240, 600, 1200])
    assert stats.activated_last_day == 6
    assert stats.p50_seconds == pytest.approx((180 + 240) / 2)
    assert stats.p95_seconds == pytest.approx(600 + (1200 - 600) * 0.75)  # position 4.75 of 0..5
    assert stats.p50_seconds == pytest.approx(percentile(everything, 0.5))
    by_start = {bucket["start"]: bucket for bucket in stats.hourly}
    assert len(stats.hourly) == 24
    assert sum(bucket["count"] for bucket in stats.hourly) == 6
    last = stats.hourly[-1]
    assert (last["count"], last["p50"], last["p95"]) == (4, 150.0, pytest.approx(240 - 60 * 0.15))
    earlier_bucket = next(b for start, b in by_start.items() if start <= earlier < start + dt.timedelta(hours=1))
    assert (earlier_bucket["count"], earlier_bucket["p50"]) == (2, 900.0)
