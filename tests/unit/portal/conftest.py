from portal_harness import db_kind, portal  # noqa: F401 - fixtures
