"""The rights matrix, CRUD, validation, conflicts and auth tests on PostgreSQL.

The test functions are the SQLite ones (tests/unit/portal); this directory's conftest
makes their database a fresh PostgreSQL database instead.
"""

from __future__ import annotations

import pytest
from test_portal_auth import (
    test_impersonation_goes_down_only,
    test_logout_revokes_the_session,
)
from test_portal_crud import (
    test_a_clients_rows_point_only_within_the_client,
    test_brand_gives_clients_only_its_own_features,
    test_client_routes_its_ddis_but_cannot_add_or_renumber,
    test_level_manages_its_entities,
    test_restricted_administrator_sees_only_its_grants,
    test_restricted_administrators_hand_out_no_rights,
    test_rows_do_not_change_tenant,
    test_shared_rows_are_read_only_below_their_owner,
    test_user_manages_only_its_call_forwards,
    test_user_reads_and_changes_its_profile,
)
from test_portal_matrix import (
    test_foreign_impersonation_is_not_found,
    test_foreign_tenant_reads_and_writes_nothing,
    test_wrong_level_tokens_are_refused_everywhere,
)
from test_portal_validation import (
    test_conflict_names_the_fields,
    test_conflicts_are_409,
    test_filters_order_pages,
    test_invalid_fields_are_named,
    test_racing_duplicates_one_wins,
    test_reference_to_missing_object_is_422,
)

pytestmark = pytest.mark.integration

__all__ = [
    "test_a_clients_rows_point_only_within_the_client",
    "test_brand_gives_clients_only_its_own_features",
    "test_client_routes_its_ddis_but_cannot_add_or_renumber",
    "test_conflict_names_the_fields",
    "test_conflicts_are_409",
    "test_filters_order_pages",
    "test_foreign_impersonation_is_not_found",
    "test_foreign_tenant_reads_and_writes_nothing",
    "test_impersonation_goes_down_only",
    "test_invalid_fields_are_named",
    "test_level_manages_its_entities",
    "test_logout_revokes_the_session",
    "test_racing_duplicates_one_wins",
    "test_reference_to_missing_object_is_422",
    "test_restricted_administrator_sees_only_its_grants",
    "test_restricted_administrators_hand_out_no_rights",
    "test_rows_do_not_change_tenant",
    "test_shared_rows_are_read_only_below_their_owner",
    "test_user_manages_only_its_call_forwards",
    "test_user_reads_and_changes_its_profile",
    "test_wrong_level_tokens_are_refused_everywhere",
]
