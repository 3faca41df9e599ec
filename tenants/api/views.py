"""The provisioning REST API. Views validate input and call one service each; errors are JSON with a code."""

from __future__ import annotations

import logging
import re
from typing import Any

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
from ghostcrm.core.errors import ApplicationError, Conflict, ValidationError
from ghostcrm.organizations.models import Organization
from tenants import selectors, services
from tenants.api.authentication import HasScope, ServiceKeyAuthentication, ServiceKeyRateThrottle
from tenants.api.serializers import (
    ERROR_SCHEMA,
    LifecycleActionSerializer,
    OperationSerializer,
    OrganizationDetailSerializer,
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
}
INVALID = {400: OpenApiResponse(ERROR_SCHEMA, description="Invalid fields; `fields` names each problem")}
NOT_FOUND = {404: OpenApiResponse(ERROR_SCHEMA, description="No such organisation or operation")}
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


def _api_fields(exc: ApplicationError) -> ApplicationError:
    fields = exc.extra.get("fields")
    if isinstance(fields, dict):
        exc.extra["fields"] = {API_FIELD_NAMES.get(name, name): messages for name, messages in fields.items()}
    return exc


class OrganizationListCreateView(ServiceKeyAPIView):
    required_scopes = {"GET": READ, "POST": WRITE}

    @extend_schema(
        summary="List organisations",
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=Organization.Status.values),
            OpenApiParameter("limit", OpenApiTypes.INT),
            OpenApiParameter("offset", OpenApiTypes.INT),
            *RATE_LIMIT_HEADERS,
        ],
        responses={200: OrganizationSerializer(many=True), **INVALID, **AUTH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        queryset = selectors.organization_list(status=request.query_params.get("status") or None)
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
        header = request.headers.get("Idempotency-Key", "")
        if header and not IDEMPOTENCY_KEY_RE.match(header):
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
        data = OrganizationSerializer(organization, context={"request": request}).data
        return Response(data, status=http.HTTP_202_ACCEPTED, headers={"Location": data["status_url"]})


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
        serializer = LifecycleActionSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data["reason"] or f"{self.action_name} requested through the API"
        actor = self.actor(request)
        http_request = request._request
        service = services.LIFECYCLE_ACTIONS[self.action_name]
        organization = service(organization_id=organization_id, actor=actor, reason=reason, request=http_request)
        organization.refresh_from_db()
        return Response(
            OrganizationSerializer(organization, context={"request": request}).data, status=self.accepted_status
        )


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
