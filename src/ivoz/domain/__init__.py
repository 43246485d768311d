"""The configuration model: SQLAlchemy models, migrations, tenancy rules, change events.

``models`` holds the entities, ``db.Database`` the engine and migrations, ``tenancy``
the rule that scopes every query to the acting tenant, ``events`` the announcements of
changes to the running roles, ``commands`` the CLI verbs (db upgrade, admin create,
demo). docs/configuration-model.md describes the whole.
"""
