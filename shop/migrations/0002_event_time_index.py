from django.db import migrations

# BRIN on PostgreSQL (stats by time on an append-mostly table); a B-tree elsewhere.
POSTGRES = "CREATE INDEX IF NOT EXISTS event_time_brin ON shop_event USING brin (occurred_at)"
OTHER = "CREATE INDEX IF NOT EXISTS event_type_time ON shop_event (type, occurred_at)"


def forwards(apps, schema_editor):
    schema_editor.execute(POSTGRES if schema_editor.connection.vendor == "postgresql" else OTHER)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS event_time_brin" if schema_editor.connection.vendor == "postgresql"
                          else "DROP INDEX IF EXISTS event_type_time")


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
