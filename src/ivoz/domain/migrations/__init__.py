"""Alembic migrations of the configuration database (run by ``Database.upgrade``)."""
