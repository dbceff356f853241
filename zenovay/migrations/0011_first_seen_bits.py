"""One first-seen row per visitor and local day, week or month, with bits.

Before, a visitor new to the month cost seven rows (its hour, day, week and month; its
session's day, week and month). Now the day row holds a bit per local hour with a pageview
and one for a session started, and the week and month rows a bit for a pageview and one for
a session: three rows (`zenovay.aggregates`). The old rows are folded into the new ones:
- a day row gets the bit of its first pageview's hour, and of every hour row of the last
  two hours (older hours are never counted again);
- a week or month row gets the pageview bit;
- a session row sets the session bit of the row of its period, made if the visitor had a
  session but no pageview there.
Going back deletes the first-seen rows: run `manage.py rebuild_aggregates` then.

Last, the aggregates are built from raw events if they never were (an install older than
0003 with events). The building runs the current code (`aggregates.rebuild`), so it runs
here, after the last change to the aggregate tables; a later change moves it along. Up to
a million events it is done here (a few minutes at most); above that the migration leaves
it to `manage.py rebuild_aggregates` (with a progress bar, one website at a time) and says
so: until then the figures of those websites count only new events.
"""

import datetime as dt

from django.db import migrations, models
from django.db.models import Exists, F, OuterRef

HOUR, DAY, WEEK, MONTH = 1, 2, 3, 4
SESSION_KINDS = (12, 13, 14)  # a session's day, week and month: the period's kind + 10
RECENT_HOURS = 2
INLINE_LIMIT = 1_000_000


def fold(apps, schema_editor):
    from zenovay import aggregates  # the current code's bits, for what this migration writes

    FirstSeen = apps.get_model("zenovay", "FirstSeen")
    Website = apps.get_model("zenovay", "Website")
    zones = dict(Website.objects.values_list("pk", "timezone"))
    FirstSeen.objects.filter(kind__in=(WEEK, MONTH)).update(bits=aggregates.PAGEVIEW)
    days = FirstSeen.objects.filter(kind=DAY).only("website_id", "first_us")
    changed = []
    for row in days.iterator(chunk_size=2000):
        quarter = row.first_us // aggregates.QUARTER_US
        row.bits = aggregates.hour_bit(zones[row.website_id], quarter)
        changed.append(row)
        if len(changed) == 2000:
            FirstSeen.objects.bulk_update(changed, ["bits"])
            changed = []
    FirstSeen.objects.bulk_update(changed, ["bits"])
    since = int((dt.datetime.now(dt.UTC) - dt.timedelta(hours=RECENT_HOURS)).timestamp())
    for row in FirstSeen.objects.filter(kind=HOUR, period__gte=since):
        zone = zones[row.website_id]
        quarter = row.period // 900
        FirstSeen.objects.filter(
            website_id=row.website_id,
            kind=DAY,
            period=aggregates.periods(zone, quarter)[1],
            visitor=row.visitor,
        ).update(bits=F("bits").bitor(aggregates.hour_bit(zone, quarter)))
    plain = FirstSeen.objects.filter(
        website_id=OuterRef("website_id"),
        kind=OuterRef("kind") - 10,
        period=OuterRef("period"),
        visitor=OuterRef("visitor"),
    )
    session = FirstSeen.objects.filter(
        website_id=OuterRef("website_id"),
        kind=OuterRef("kind") + 10,
        period=OuterRef("period"),
        visitor=OuterRef("visitor"),
    )
    FirstSeen.objects.filter(kind__in=(DAY, WEEK, MONTH)).filter(Exists(session)).update(
        bits=F("bits").bitor(aggregates.SESSION)
    )
    FirstSeen.objects.filter(kind__in=SESSION_KINDS).exclude(Exists(plain)).update(
        kind=F("kind") - 10, bits=aggregates.SESSION, first_us=None
    )
    FirstSeen.objects.filter(kind__in=(HOUR, *SESSION_KINDS)).delete()


def unfold(apps, schema_editor):
    apps.get_model("zenovay", "FirstSeen").objects.all().delete()


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
    dependencies = [("zenovay", "0010_site_indexes_only")]

    operations = [
        migrations.AddField(
            model_name="firstseen", name="bits", field=models.BigIntegerField(default=0)
        ),
        migrations.AddField(
            model_name="firstseen",
            name="prev",
            field=models.BigIntegerField(default=0, help_text="The bits before the last change."),
        ),
        migrations.AlterField(
            model_name="firstseen",
            name="first_us",
            field=models.BigIntegerField(help_text="The first pageview, if any.", null=True),
        ),
        migrations.RunPython(fold, unfold),
        migrations.RemoveField(model_name="firstseen", name="returning_visitor"),
        migrations.RunPython(build_if_never_built, migrations.RunPython.noop),
    ]
