"""Breakdowns read the day sketches: drop PeriodTally and the first-seen rows per value.

Visitors per page, referrer, country... were exact through a first-seen row per visitor,
value and period (about nine rows for each new visitor), which tripled the cost of
ingest; they are now a HyperLogLog estimate from the day sketches (`zenovay.sketches`),
which also give the counts. What is left of FirstSeen is one row per visitor and period.

An install whose aggregates were never built gets them in 0011.
"""

from django.db import migrations, models


def drop_value_rows(apps, schema_editor):
    FirstSeen = apps.get_model("zenovay", "FirstSeen")
    FirstSeen.objects.exclude(key="").delete()


class Migration(migrations.Migration):
    dependencies = [("zenovay", "0008_sketches")]

    operations = [
        migrations.RunPython(drop_value_rows, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="firstseen", name="first_seen_unique"),
        migrations.RemoveIndex(model_name="firstseen", name="first_seen_plain"),
        migrations.RemoveField(model_name="firstseen", name="key"),
        migrations.AddConstraint(
            model_name="firstseen",
            constraint=models.UniqueConstraint(
                fields=("website", "kind", "period", "visitor"), name="first_seen_visitor"
            ),
        ),
        migrations.AddIndex(
            model_name="firstseen",
            index=models.Index(
                fields=["website", "kind", "period", "first_us"], name="first_seen_time"
            ),
        ),
        migrations.DeleteModel(name="PeriodTally"),
    ]
