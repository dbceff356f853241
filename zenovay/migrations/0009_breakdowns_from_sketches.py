"""Breakdowns read the day sketches: drop PeriodTally and the first-seen rows per value.

Visitors per page, referrer, country... were exact through a first-seen row per visitor,
value and period (about nine rows for each new visitor), which tripled the cost of
ingest; they are now a HyperLogLog estimate from the day sketches (`zenovay.sketches`),
which also give the counts. What is left of FirstSeen is one row per visitor and period.

Then the aggregates are built from raw events if they never were (an install older than
0003 with events). Up to a million events it is done here (a few minutes at most); above
that the migration leaves it to `manage.py rebuild_aggregates` (with a progress bar, one
website at a time) and says so: until then the figures of those websites count only new
events.
"""

from django.db import migrations, models

INLINE_LIMIT = 1_000_000


def drop_value_rows(apps, schema_editor):
    FirstSeen = apps.get_model("zenovay", "FirstSeen")
    FirstSeen.objects.exclude(key="").delete()


def build_if_never_built(apps, schema_editor):
    Tally = apps.get_model("zenovay", "Tally")
    if Tally.objects.exists():  # built by an earlier 0005, and kept up by ingest since
        return
    Event = apps.get_model("zenovay", "Event")
    Website = apps.get_model("zenovay", "Website")
    count = Event.objects.count()
    if count == 0:
        return
    if count > INLINE_LIMIT:
        print(
            f"\n  {count} events are stored: run `python manage.py rebuild_aggregates`"
            " to build the aggregates every figure is read from."
        )
        return
    from zenovay import aggregates  # the current code, on the tables as they are now

    for pk in Website.objects.order_by("pk").values_list("pk", flat=True):
        aggregates.rebuild(pk)


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
        migrations.RunPython(build_if_never_built, migrations.RunPython.noop),
    ]
