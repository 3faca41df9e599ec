# Organization moved to the ``organizations`` app with its table unchanged: the foreign key is re-pointed
# in Django's state only (the database constraint already references tenants_organization).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0001_initial"),
        ("organizations", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="integrationpreference",
                    name="organization",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="integration_preferences", to="organizations.organization"),
                ),
            ],
            database_operations=[],
        ),
    ]
