"""The provisioning REST API. Views validate input and call one service each; errors are JSON with a code."""

from __future__ import annotations

import logging
import re
from typing import Any

import django_rq
from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status as http
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ghostcrm.audit.services import Actor
from ghostcrm.core.api import BoundedJSONParser, queue_unavailable_error
from ghostcrm.core.errors import ApplicationError, Conflict, ValidationError
from ghostcrm.organizations.models import Organization
from tenants import queue, selectors, services
from tenants.api.authentication import HasScope, ServiceKeyAuthentication, ServiceKeyRateThrottle
from tenants.api.limits import REDIS_DOWN
from tenants.api.serializers import (
    ERROR_SCHEMA,
    LifecycleActionSerializer,
    OperationSerializer,
    OrganizationDetailSerializer,
    OrganizationListQuerySerializer,
    OrganizationRequestSerializer,
    OrganizationSerializer,
)
from tenants.models import ServiceKey

logger = logging.getLogger(__name__)
READ = ServiceKey.Scope.ORGANIZATIONS_READ
WRITE = ServiceKey.Scope.ORGANIZATIONS_WRITE
LIFECYCLE = ServiceKey.Scope.ORGANIZATIONS_LIFECYCLE
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
# The service names fields after the model; the API after its request body.
API_FIELD_NAMES = {"name": "client_name", "plan": "plan", "admin_email": "admin_email"}
# Every operation can answer these; each view adds the ones specific to it.
AUTH_ERRORS = {
    401: OpenApiResponse(ERROR_SCHEMA, description="Missing, malformed, expired or revoked key"),
    403: OpenApiResponse(ERROR_SCHEMA, description="The key lacks the scope"),
    429: OpenApiResponse(ERROR_SCHEMA, description="Rate limit reached; wait Retry-After seconds"),
    503: OpenApiResponse(ERROR_SCHEMA, description="The database or the job queue is unreachable; wait Retry-After "
                         "seconds. `queue_unavailable` after a write carries the organisation as recorded."),
}  # fmt: skip
INVALID = {400: OpenApiResponse(ERROR_SCHEMA, description="Invalid fields; `fields` names each problem")}
NOT_FOUND = {404: OpenApiResponse(ERROR_SCHEMA, description="No such organisation or operation")}
# After these the organisation waits for a job on the queue.
QUEUED_STATUSES = frozenset({Organization.Status.PENDING, Organization.Status.PROVISIONING,
                             Organization.Status.DEPROVISIONING})  # fmt: skip
CONFLICT = {409: OpenApiResponse(ERROR_SCHEMA, description="The lifecycle forbids this action now")}
RATE_LIMIT_HEADERS = [
    OpenApiParameter(
        "RateLimit-Limit", OpenApiTypes.INT, OpenApiParameter.HEADER, response=True,
        description="Requests this key may make per window (API_KEY_RATE_LIMIT)",
    ),
    OpenApiParameter(
        "RateLimit-Remaining", OpenApiTypes.INT, OpenApiParameter.HEADER, response=True,
        description="Requests left in the current window",
    ),
    OpenApiParameter(
        "RateLimit-Reset", OpenApiTypes.INT, OpenApiParameter.HEADER, response=True,
        description="Seconds until a request slot frees up",
    ),
]  # fmt: skip


class OrganizationPagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class ServiceKeyAPIView(APIView):
    authentication_classes = [ServiceKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ServiceKeyRateThrottle]
    parser_classes = [BoundedJSONParser]  # JSON only: the schema declares no other body
    required_scopes: dict[str, str] = {}

    def actor(self, request: Request) -> Actor:
        key: ServiceKey = request.auth  # type: ignore[assignment]
        return Actor.api_key(key.pk, key.name)

    def handle_exception(self, exc: Exception) -> Response:
        try:
            return super().handle_exception(exc)
        except Exception:
            # A bug or an outage the services did not turn into an ApplicationError: still the API's JSON shape
            # (the traceback goes to the log, never to the caller).
            logger.exception("unhandled error in %s", type(self).__name__)
            return Response(
                {"code": "server_error", "message": "The server failed to handle this request; it has been logged."},
                status=http.HTTP_500_INTERNAL_SERVER_ERROR,
            )

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        # Set by ServiceKeyRateThrottle once the key is known, on successes and errors (429 included) alike.
        for header, value in getattr(self, "rate_limit_headers", {}).items():
            response[header] = value
        return response


def api_not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any URL under /api/ that names nothing: the API's JSON error shape, not Django's HTML page."""
    message = f"There is no API endpoint at {request.path}."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
        except Resolver404:
            pass
        else:
            message += f" API URLs end with a slash: {request.path}/"
    return JsonResponse({"code": "not_found", "message": message}, status=404)


def _queue_reachable() -> bool:
    try:
        django_rq.get_connection(queue.QUEUE_NAME).ping()
    except REDIS_DOWN:
        return False
    return True


def _written(request: Request, organization: Organization, status_code: int, headers: dict[str, str]) -> Response:
    """The answer to a write that leaves work for a worker: ``status_code``, or a 503 ``queue_unavailable`` that
    still carries the organisation when Redis could not take the job (the reconciler enqueues it later)."""
    data = OrganizationSerializer(organization, context={"request": request}).data
    if organization.status not in QUEUED_STATUSES or _queue_reachable():
        return Response(data, status=status_code, headers=headers)
    error = queue_unavailable_error(
        f"The organisation was recorded as {organization.status}, but the job queue (Redis) is unreachable: the "
        "reconciler enqueues its job once Redis is back. Poll status_url, or repeat this request (with the same "
        "Idempotency-Key) after Retry-After seconds.",
        organization=data,
    )
    headers = {**headers, "Retry-After": str(error.extra["retry_after"])}
    return Response(error.as_dict(), status=http.HTTP_503_SERVICE_UNAVAILABLE, headers=headers)


def _api_fields(exc: ApplicationError) -> ApplicationError:
    fields = exc.extra.get("fields")
    if isinstance(fields, dict):
        exc.extra["fields"] = {API_FIELD_NAMES.get(name, name): messages for name, messages in fields.items()}
    return exc


class OrganizationListCreateView(ServiceKeyAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}
    pagination_class = OrganizationPagination  # so the schema declares the paginated object GET returns

    @extend_schema(
        summary="List organisations",
        parameters=[OrganizationListQuerySerializer, *RATE_LIMIT_HEADERS],
        responses={200: OrganizationSerializer(many=True), **INVALID, **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        # A plain dict: as a QueryDict, DRF would read "status=" as "not given" instead of refusing it.
        query = OrganizationListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)  # an empty or unknown status, a limit of "1.5": 400
        queryset = selectors.organization_list(status=query.validated_data.get("status"))
        paginator = OrganizationPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = OrganizationSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        summary="Request a new client organisation (provisioning starts)",
        request=OrganizationRequestSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                pattern=IDEMPOTENCY_KEY_RE.pattern,
                description="Same key (per service key) and body: the same organisation again, as it is now, "
                "even after it moved on. Same key, other body: 422.",
            ),
            OpenApiParameter(
                "Location",
                OpenApiTypes.URI,
                OpenApiParameter.HEADER,
                response=[202],
                description="The organisation's status_url",
            ),
            *RATE_LIMIT_HEADERS,
        ],
        responses={
            202: OpenApiResponse(
                OrganizationSerializer,
                description="Accepted: provisioning runs on a worker; poll status_url until status is active "
                "(or failed, with last_error).",
            ),
            **INVALID,
            **AUTH_ERRORS,
            409: OpenApiResponse(ERROR_SCHEMA, description="The same name is taken by another admin e-mail"),
            422: OpenApiResponse(ERROR_SCHEMA, description="Idempotency-Key reused with another body"),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = OrganizationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        header = request.headers.get("Idempotency-Key")  # None when absent; present but empty is refused
        if header is not None and not IDEMPOTENCY_KEY_RE.match(header):
            raise ValidationError(
                "The Idempotency-Key header must be 1 to 200 printable characters without spaces.",
                extra={"fields": {"Idempotency-Key": ["Use 1 to 200 printable characters without spaces."]}},
            )
        key: ServiceKey = request.auth  # type: ignore[assignment]
        try:
            organization = services.organization_request(
                name=serializer.validated_data["client_name"],
                admin_email=serializer.validated_data["admin_email"],
                plan_code=serializer.validated_data["plan"],
                actor=self.actor(request),
                # Keys are scoped per service key: two callers never see each other's requests.
                idempotency_key=f"key{key.pk}:{header}" if header else None,
                request=request._request,
            )
        except (ValidationError, Conflict) as exc:  # a 409 organization_exists names its field too
            raise _api_fields(exc) from None
        location = OrganizationSerializer(organization, context={"request": request}).data["status_url"]
        return _written(request, organization, http.HTTP_202_ACCEPTED, {"Location": location})


class OrganizationDetailView(ServiceKeyAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        summary="One organisation, with its operations",
        parameters=RATE_LIMIT_HEADERS,
        responses={200: OrganizationDetailSerializer, **NOT_FOUND, **AUTH_ERRORS},
    )
    def get(self, request: Request, organization_id: str) -> Response:
        organization = selectors.organization_get(organization_id=organization_id)
        return Response(OrganizationDetailSerializer(organization, context={"request": request}).data)


class OrganizationActionView(ServiceKeyAPIView):
    required_scopes = {"POST": LIFECYCLE}
    action_name = ""
    accepted_status = http.HTTP_200_OK

    def post(self, request: Request, organization_id: str) -> Response:
        serializer = LifecycleActionSerializer(data=request.data)  # no body is {}; a list or a string is a 400
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data["reason"] or f"{self.action_name} requested through the API"
        actor = self.actor(request)
        http_request = request._request
        service = services.LIFECYCLE_ACTIONS[self.action_name]
        organization = service(organization_id=organization_id, actor=actor, reason=reason, request=http_request)
        organization.refresh_from_db()
        return _written(request, organization, self.accepted_status, {})


def _action_view(name: str, status_code: int, summary: str) -> Any:
    # extend_schema annotates the function it is given: each action needs its own, or the four would share
    # (and document) whichever summary and status code were set last.
    def post(self: OrganizationActionView, request: Request, organization_id: str) -> Response:
        return OrganizationActionView.post(self, request, organization_id)

    post = extend_schema(
        summary=summary,
        request=LifecycleActionSerializer,
        parameters=RATE_LIMIT_HEADERS,
        responses={status_code: OrganizationSerializer, **INVALID, **NOT_FOUND, **CONFLICT, **AUTH_ERRORS},
    )(post)
    view: Any = type(
        f"Organization{name.title()}View",
        (OrganizationActionView,),
        {"action_name": name, "accepted_status": status_code, "post": post},
    )
    return view.as_view()


organization_retry_view = _action_view(
    "retry", http.HTTP_202_ACCEPTED, "Provision a failed or stuck organisation again"
)
organization_suspend_view = _action_view("suspend", http.HTTP_200_OK, "Suspend: the tenant's database login is revoked")
organization_resume_view = _action_view("resume", http.HTTP_200_OK, "Resume a suspended organisation")
organization_deprovision_view = _action_view(
    "deprovision", http.HTTP_202_ACCEPTED, "Export, then delete (the schema is purged after the retention period)"
)


class OperationDetailView(ServiceKeyAPIView):
    required_scopes = {"GET": READ}

    @extend_schema(
        summary="One operation (a lifecycle step as it ran)",
        parameters=RATE_LIMIT_HEADERS,
        responses={200: OperationSerializer, **NOT_FOUND, **AUTH_ERRORS},
    )
    def get(self, request: Request, operation_id: str) -> Response:
        return Response(OperationSerializer(selectors.operation_get(operation_id=operation_id)).data)
