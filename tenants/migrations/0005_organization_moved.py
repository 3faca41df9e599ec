# Organization moved to the ``organizations`` app (ghostcrm.organizations) with its table and rows unchanged.
# Only Django's state changes here: the foreign keys point at the new model, and the dashboard's proxy is
# re-based on it. Every app's foreign keys are re-pointed before the old model leaves the state.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tenants", "0004_client_organisation_names"),
        ("organizations", "0001_initial"),
        ("billing", "0002_organization_moved"),
        ("integrations", "0002_organization_moved"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="idempotencyrecord",
                    name="organization",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="organizations.organization", verbose_name="client organisation"),
                ),
                migrations.AlterField(
                    model_name="operation",
                    name="organization",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="operations", to="organizations.organization", verbose_name="client organisation"),
                ),
                migrations.DeleteModel(name="ProvisioningDashboard"),
                migrations.DeleteModel(name="Organization"),
                migrations.CreateModel(
                    name="ProvisioningDashboard",
                    fields=[],
                    options={
                        "verbose_name": "provisioning dashboard",
                        "verbose_name_plural": "provisioning dashboard",
                        "proxy": True,
                        "indexes": [],
                        "constraints": [],
                    },
                    bases=("organizations.organization",),
                ),
            ],
            database_operations=[],
        ),
    ]
