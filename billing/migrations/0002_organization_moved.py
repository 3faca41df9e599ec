# Organization moved to the ``organizations`` app with its table unchanged: the foreign keys are re-pointed
# in Django's state only (the database constraints already reference tenants_organization).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_initial"),
        ("organizations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="customer",
                    name="organization",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name="billing", to="organizations.organization"),
                ),
                migrations.AlterField(
                    model_name="usagereading",
                    name="organization",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="usage_readings", to="organizations.organization"),
                ),
            ],
            database_operations=[],
        ),
    ]
