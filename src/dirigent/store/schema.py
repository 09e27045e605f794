"""Versioned migrations, written once for both databases.

Each migration is a list of statements in a neutral dialect: ``{id}`` is an
auto-increment key, ``{blob}`` large text, ``{float}`` a double. A store
applies, in one transaction each, the migrations newer than the version it
finds recorded in ``schema_version``; they are never edited once released.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE state_machines (
                arn TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                definition {blob} NOT NULL,
                role_arn TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                revision_id TEXT NOT NULL,
                logging TEXT NOT NULL DEFAULT '{{}}',
                tracing TEXT NOT NULL DEFAULT '{{}}',
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL
            )""",
            """CREATE TABLE state_machine_versions (
                arn TEXT PRIMARY KEY,
                machine_arn TEXT NOT NULL,
                version INTEGER NOT NULL,
                definition {blob} NOT NULL,
                role_arn TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                revision_id TEXT NOT NULL,
                created_at {float} NOT NULL,
                UNIQUE (machine_arn, version)
            )""",
            """CREATE TABLE state_machine_aliases (
                arn TEXT PRIMARY KEY,
                machine_arn TEXT NOT NULL,
                name TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                routing TEXT NOT NULL,
                created_at {float} NOT NULL,
                updated_at {float} NOT NULL,
                UNIQUE (machine_arn, name)
            )""",
            """CREATE TABLE activities (
                arn TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created_at {float} NOT NULL
            )""",
            """CREATE TABLE tags (
                resource_arn TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (resource_arn, key)
            )""",
            """CREATE TABLE executions (
                arn TEXT PRIMARY KEY,
                machine_arn TEXT NOT NULL,
                name TEXT NOT NULL,
                status TEXT NOT NULL,
                input {blob} NOT NULL,
                output {blob},
                error TEXT,
                cause {blob},
                started_at {float} NOT NULL,
                stopped_at {float},
                started_with TEXT NOT NULL,
                definition {blob} NOT NULL,
                role_arn TEXT NOT NULL,
                token_prefix TEXT NOT NULL,
                snapshot {blob},
                event_count INTEGER NOT NULL DEFAULT 0,
                redrive_count INTEGER NOT NULL DEFAULT 0,
                redriven_at {float},
                parent_arn TEXT,
                parent_token TEXT,
                machine_type TEXT NOT NULL DEFAULT 'STANDARD',
                UNIQUE (machine_arn, name)
            )""",
            "CREATE INDEX executions_by_machine ON executions (machine_arn, started_at)",
            "CREATE INDEX executions_by_status ON executions (status, started_at)",
            """CREATE TABLE events (
                execution_arn TEXT NOT NULL,
                id INTEGER NOT NULL,
                previous_id INTEGER NOT NULL,
                ts {float} NOT NULL,
                type TEXT NOT NULL,
                details {blob} NOT NULL,
                PRIMARY KEY (execution_arn, id)
            )""",
            """CREATE TABLE signals (
                id {id},
                execution_arn TEXT NOT NULL,
                due_at {float} NOT NULL,
                body {blob} NOT NULL
            )""",
            "CREATE INDEX signals_by_due ON signals (due_at)",
            "CREATE INDEX signals_by_execution ON signals (execution_arn, id)",
            """CREATE TABLE tasks (
                token TEXT PRIMARY KEY,
                execution_arn TEXT NOT NULL,
                kind TEXT NOT NULL,
                command {blob} NOT NULL,
                status TEXT NOT NULL,
                created_at {float} NOT NULL,
                activity_arn TEXT,
                lease_until {float},
                worker TEXT
            )""",
            "CREATE INDEX tasks_by_status ON tasks (status, kind, lease_until)",
            "CREATE INDEX tasks_by_activity ON tasks (activity_arn, status, created_at)",
            "CREATE INDEX tasks_by_execution ON tasks (execution_arn)",
        ),
    ),
)

LATEST = MIGRATIONS[-1][0]
