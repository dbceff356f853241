"""Built the aggregates of an existing install from its raw events.

The building runs the current code (`aggregates.rebuild`), so it needs the aggregate
tables as they are now: the last migration that changes them does it (0011), for an
install whose aggregates were never built. This migration is kept for its name.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("zenovay", "0004_aggregate_keys")]

    operations: list = []
