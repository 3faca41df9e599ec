"""factory-boy factories for the accounts app's tests (and the one organisation they invite to)."""

from __future__ import annotations

from typing import Any

import factory
from django_otp.plugins.otp_totp.models import TOTPDevice
from factory.django import DjangoModelFactory, Password

from ghostcrm.accounts.models import Role, User
from ghostcrm.organizations.models import Organization

PASSWORD = "violet-lantern-harbour-42"


class UserFactory(DjangoModelFactory):
    """A control-plane user (Support unless told otherwise) whose password is ``PASSWORD``."""

    class Meta:
        model = User
        django_get_or_create = ("email",)

    email = factory.Sequence(lambda n: f"user{n}@ghostcrm.test")
    first_name = "Sam"
    last_name = "Support"
    role = Role.SUPPORT
    password = Password(PASSWORD)


class SuperAdminFactory(UserFactory):
    email = factory.Sequence(lambda n: f"boss{n}@ghostcrm.test")
    first_name = "Bea"
    last_name = "Boss"
    role = Role.SUPER_ADMIN


class TOTPDeviceFactory(DjangoModelFactory):
    """A confirmed authenticator app (codes from ``helpers.totp_code``)."""

    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "phone"
    confirmed = True


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = "Acme Ltd"
    slug = factory.Sequence(lambda n: f"acme-ltd-{n}")
    admin_email = factory.LazyAttribute(lambda o: f"ceo@{o.slug}.test")

    @classmethod
    def _create(cls, model_class: type[Organization], *args: Any, **kwargs: Any) -> Organization:
        organization = model_class(*args, **kwargs)
        organization.full_clean()  # derives the schema name from the slug, as the service does
        organization.save()
        return organization
