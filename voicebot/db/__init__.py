"""State and events: SQLAlchemy 2 async (SQLite default, PostgreSQL via asyncpg), Alembic migrations."""
