"""Build the aggregates of an existing install from its raw events.

Up to a million events it is done here (a few minutes at most); above that the migration
leaves it to `manage.py rebuild_aggregates` (with a progress bar, one website at a time)
and says so: until then the figures of those websites count only new events.
"""

from django.db import migrations

INLINE_LIMIT = 1_000_000


def rebuild(apps, schema_editor):
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
    from zenovay import aggregates  # the current code: this migration runs it once

    for pk in Website.objects.order_by("pk").values_list("pk", flat=True):
        aggregates.rebuild(pk)


class Migration(migrations.Migration):
    dependencies = [("zenovay", "0004_aggregate_keys")]

    operations = [migrations.RunPython(rebuild, migrations.RunPython.noop)]
