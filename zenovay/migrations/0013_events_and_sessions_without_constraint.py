"""Events and sessions keep their website key without a database constraint: PostgreSQL
checked it for every inserted row at commit, locking the website's row each time. A batch
now locks its websites once, and a website's deletion locks it first (zenovay.signals), so
no event or session outlives its website; deleting still deletes them (Django's cascade)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('zenovay', '0012_first_seen_days_only'),
    ]

    operations = [
        migrations.AlterField(
            model_name='event',
            name='website',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='zenovay.website'),
        ),
        migrations.AlterField(
            model_name='session',
            name='website',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='zenovay.website'),
        ),
    ]
