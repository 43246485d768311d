"""Schemathesis against each level's OpenAPI document: no input makes a server error.

Every operation of every level gets generated requests (valid and invalid ones, with a
bounded number of examples), authenticated as tenant A's actor of that level, both on
generated ids and on ids of objects that exist. The check is the one that matters
here: no 5xx. The app runs in schemathesis' own event loop thread, so this test is
synchronous and the database is created for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from portal_harness import _sqlite_template
from schemathesis import GenerationMode

from ivoz.config import Config
from ivoz.domain.db import Database
from ivoz.domain.events import MemoryEventBus
from ivoz.portal.app import create_app
from ivoz.portal.tokens import Principal

EXAMPLES = 4  # per operation and mode: enough to walk every branch of the validation


@pytest.fixture
def asgi(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # A database per level: the platform run deletes what the brand run logs in with.
    base = tmp_path_factory.mktemp("schemathesis")
    template, seed = asyncio.run(
        _sqlite_template(tmp_path_factory.getbasetemp() / "portal-template")
    )
    path = base / "portal.sqlite3"
    shutil.copyfile(template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    config = dataclasses.replace(Config(), data_dir=Path(base), api_secret="schemathesis")
    app = create_app(config, database, MemoryEventBus())
    tokens = app.state.portal.tokens
    a = seed.a
    principals = {
        "platform": Principal("platform", "admin", seed.platform_admin_id, None, None, None, "s"),
        "brand": Principal("brand", "admin", a.brand_admin_id, a.brand_id, None, None, "s"),
        "client": Principal(
            "client", "admin", a.client_admin_id, a.brand_id, a.company_id, None, "s"
        ),
        "user": Principal("user", "user", a.user_id, a.brand_id, a.company_id, a.user_id, "s"),
    }
    # Access tokens outlive the run: the wall clock is the app's clock here.
    tokens.access_ttl = 3600
    auth = {
        level: {"Authorization": f"Bearer {tokens.issue(p).access_token}"}
        for level, p in principals.items()
    }
    return app, auth, seed, EXAMPLES


@pytest.mark.parametrize("level", ["platform", "brand", "client", "user"])
def test_no_server_errors(asgi: Any, level: str) -> None:
    app, auth, seed, examples = asgi
    schema = schemathesis.openapi.from_asgi(f"/api/{level}/openapi.json", app)
    headers = auth[level]
    failures: list[str] = []
    operations = 0
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/logout":
            continue  # would revoke the token the run uses (tested in test_portal_auth)
        operations += 1
        fixed_ids: list[dict[str, Any] | None] = [None]
        if "{id}" in operation.path:
            entity = operation.path.split("/")[1]
            if entity in seed.a.ids:
                fixed_ids.append({"id": seed.a.ids[entity]})
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for path_parameters in fixed_ids:
                strategy = operation.as_strategy(
                    generation_mode=mode, headers=headers, path_parameters=path_parameters
                )

                @settings(
                    max_examples=examples,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Any) -> None:
                    response = case.call(headers=headers)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        failures.append(
                            f"{case.method} {case.formatted_path} {case.query} {case.body!r}"
                            f" -> {response.status_code} {response.text[:300]}"
                        )

                try:
                    run()
                except Unsatisfiable:
                    # Nothing to make invalid (no parameters, or all fixed): nothing to test.
                    assert mode == GenerationMode.NEGATIVE
    assert operations > 3
    print(level, operations, sorted(statuses.items()))
    # The token works (successes) and validation is exercised (422s).
    assert statuses.get(200, 0) > 0 and statuses.get(422, 0) > 0, statuses
    assert not failures, "\n".join(failures[:20])
