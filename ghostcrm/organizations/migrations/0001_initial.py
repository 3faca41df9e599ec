# The Organization model moves here from ``tenants`` without touching the database: the table keeps its
# name (tenants_organization) and its rows, so this migration only changes Django's state. The content
# type is renamed so the permissions granted on organisations (and admin log entries) follow the model.

import uuid

from django.db import migrations, models

import ghostcrm.core.fields
import ghostcrm.organizations.schema_names


# Plain SQL that SQL Server, PostgreSQL and SQLite all accept, so the T-SQL export carries it too.
MOVE_CONTENT_TYPE = (
    "UPDATE django_content_type SET app_label = 'organizations' "
    "WHERE app_label = 'tenants' AND model = 'organization' AND NOT EXISTS "
    "(SELECT 1 FROM django_content_type WHERE app_label = 'organizations' AND model = 'organization')"
)
RESTORE_CONTENT_TYPE = (
    "UPDATE django_content_type SET app_label = 'tenants' "
    "WHERE app_label = 'organizations' AND model = 'organization' AND NOT EXISTS "
    "(SELECT 1 FROM django_content_type WHERE app_label = 'tenants' AND model = 'organization')"
)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("tenants", "0004_client_organisation_names"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Organization",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("name", models.CharField(max_length=200)),
                        ("slug", models.SlugField(help_text="Lowercase letters, digits and hyphens.", max_length=63, unique=True)),
                        ("schema_name", models.CharField(editable=False, max_length=63, unique=True, validators=[ghostcrm.organizations.schema_names.validate_schema_name])),
                        ("admin_email", models.EmailField(max_length=254, verbose_name="admin e-mail")),
                        ("status", models.CharField(choices=[("pending", "Pending"), ("provisioning", "Provisioning"), ("active", "Active"), ("failed", "Failed"), ("suspended", "Suspended"), ("deprovisioning", "Deprovisioning"), ("deleted", "Deleted"), ("purged", "Purged")], db_index=True, default="pending", max_length=20)),
                        ("plan_code", models.CharField(blank=True, help_text="Billing plan code chosen at sign-up.", max_length=64)),
                        ("last_error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("status_changed_at", models.DateTimeField(blank=True, null=True)),
                        ("activated_at", models.DateTimeField(blank=True, null=True)),
                        ("app_role_password", ghostcrm.core.fields.EncryptedTextField(blank=True, editable=False, null=True)),
                        ("invited_at", models.DateTimeField(blank=True, null=True)),
                        ("deleted_at", models.DateTimeField(blank=True, null=True)),
                        ("purge_after", models.DateTimeField(blank=True, help_text="When the retention purge drops the schema.", null=True)),
                        ("export_path", models.CharField(blank=True, help_text="The pg_dump export kept after deletion.", max_length=500)),
                    ],
                    options={
                        "verbose_name": "client organisation",
                        "verbose_name_plural": "client organisations",
                        "db_table": "tenants_organization",
                        "ordering": ["-created_at"],
                        "permissions": [("lifecycle_organization", "Can retry, suspend, resume and deprovision organisations")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunSQL(MOVE_CONTENT_TYPE, RESTORE_CONTENT_TYPE),
    ]
