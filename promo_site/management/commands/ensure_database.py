import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql


class Command(BaseCommand):
    help = "Create the configured PostgreSQL database when it does not exist yet (SQLite needs nothing)."

    def handle(self, *args, **options):
        db = settings.DATABASES["default"]
        if not settings.DB_IS_POSTGRES:
            settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
            self.stdout.write(f"Database: SQLite at {db['NAME']}")
            return
        params = {
            "host": db.get("HOST") or None,
            "port": db.get("PORT") or None,
            "user": db.get("USER") or None,
            "password": db.get("PASSWORD") or None,
            "dbname": "postgres",
            "autocommit": True,
        }
        try:
            with psycopg.connect(**{k: v for k, v in params.items() if v is not None}) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db["NAME"])))
                    self.stdout.write(f"Created PostgreSQL database {db['NAME']}")
        except psycopg.Error as exc:
            raise CommandError(f"Cannot reach PostgreSQL at {db.get('HOST')}:{db.get('PORT')}: {exc}") from exc
        self.stdout.write(f"Database: PostgreSQL {db['NAME']} at {db.get('HOST')}:{db.get('PORT')}")
