"""The registry of tenant database servers (main database, portable ORM only)."""

from __future__ import annotations

from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from ghostcrm.core.fields import EncryptedTextField

PRIMARY_SERVER_NAME = "primary"
SERVER_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
DEFAULT_CAPACITY = 1000

validate_server_name = RegexValidator(
    SERVER_NAME_PATTERN,
    "A server name is 1 to 63 lowercase letters, digits and hyphens, starting with a letter.",
    code="invalid_server_name",
)


class TenantServer(models.Model):
    """One PostgreSQL server that holds (or will hold) client schemas.

    ``url`` is the connection URL without its password (safe to show and log); the password is kept apart,
    encrypted at rest with the project's key ring.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"  # takes new clients
        DRAINING = "draining", "Draining"  # takes no new clients; its clients are to be moved off
        CLOSED = "closed", "Closed"  # takes no new clients

    name = models.CharField(max_length=63, unique=True, validators=[validate_server_name])
    url = models.CharField(
        "connection URL", max_length=500, help_text="postgres://user@host:port/database (the password is kept apart)."
    )
    password = EncryptedTextField(null=True, blank=True, editable=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN, db_index=True)
    capacity = models.PositiveIntegerField(
        default=DEFAULT_CAPACITY, validators=[MinValueValidator(1)], help_text="The most clients this server takes."
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "tenant database server"
        verbose_name_plural = "tenant database servers"
        permissions = [("state_tenantserver", "Can open, drain and close tenant database servers")]

    def __str__(self) -> str:
        return self.name
