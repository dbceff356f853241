"""First-seen rows are kept per visitor and local day only: whether a visitor new to the
day is new to its week and month is read from its earlier day rows (zenovay.aggregates).
The week and month rows go, and the unique index leads with the visitor after the kind,
so that read is one index range per visitor."""

from django.db import migrations, models

WEEK, MONTH = 3, 4  # zenovay.aggregates' kinds, as they are today


def drop_week_and_month_rows(apps, schema_editor) -> None:
    apps.get_model("zenovay", "FirstSeen").objects.filter(kind__in=(WEEK, MONTH)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("zenovay", "0011_first_seen_bits"),
    ]

    operations = [
        migrations.RunPython(drop_week_and_month_rows, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="firstseen", name="first_seen_visitor"),
        migrations.AddConstraint(
            model_name="firstseen",
            constraint=models.UniqueConstraint(
                fields=("website", "kind", "visitor", "period"), name="first_seen_visitor"
            ),
        ),
    ]
