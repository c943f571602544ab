"""Every write the studio makes, one module per area (as Zulip's zerver/actions/). Each `do_*` runs in one durable
transaction (or, where the engine must run first, a few in sequence), takes the acting user keyword-only, saves with
update_fields and writes one AuditEvent. Actions share steps through undecorated helpers, never by calling each other.

Callers write `from mappings import actions` and `actions.do_…`; the package exports every action."""

from mappings.actions.auth import (  # its receivers record sign-ins, sign-outs and failed sign-ins
    do_delete_account,
    do_issue_api_token,
    do_record_account_saved,
    do_record_api_token_refused,
    do_record_group_changed,
)
from mappings.actions.batches import (
    do_cancel_batch,
    do_finish_batch,
    do_reprocess_batch,
    do_start_batch,
)
from mappings.actions.deployments import (
    do_deploy,
    do_finish_index,
    do_rollback,
)
from mappings.actions.exports import (
    do_cancel_export,
    do_delete_export_files,
    do_delete_patient_group,
    do_fail_export,
    do_finish_export,
    do_save_patient_group,
    do_start_export,
)
from mappings.actions.facades import (
    do_bind_resource,
    do_create_data_source,
    do_create_facade,
    do_delete_binding,
    do_delete_data_source,
    do_delete_facade,
    do_update_data_source,
    do_update_facade,
    do_upload_records,
)
from mappings.actions.library import (
    do_create_lookup_table,
    do_create_snippet,
    do_delete_lookup_table,
    do_delete_snippet,
    do_import_lookup_table,
    do_update_lookup_table,
    do_update_snippet,
)
from mappings.actions.mappings import (
    MAPPING_FIELDS,
    do_create_mapping,
    do_delete_mapping,
    do_update_mapping,
)
from mappings.actions.profiles import (
    do_delete_definition,
    do_delete_package,
    do_upload_definition,
    do_upload_package,
)
from mappings.actions.samples import (
    SAMPLE_FIELDS,
    do_create_sample,
    do_delete_sample,
    do_run_tests,
    do_update_sample,
)
from mappings.actions.versions import (
    do_publish_version,
    do_restore_version,
    do_save_draft,
)

__all__ = [
    "MAPPING_FIELDS",
    "SAMPLE_FIELDS",
    "do_bind_resource",
    "do_cancel_batch",
    "do_cancel_export",
    "do_create_data_source",
    "do_create_facade",
    "do_create_lookup_table",
    "do_create_mapping",
    "do_create_sample",
    "do_create_snippet",
    "do_delete_account",
    "do_delete_binding",
    "do_delete_data_source",
    "do_delete_definition",
    "do_delete_export_files",
    "do_delete_facade",
    "do_delete_lookup_table",
    "do_delete_mapping",
    "do_delete_package",
    "do_delete_patient_group",
    "do_delete_sample",
    "do_delete_snippet",
    "do_deploy",
    "do_fail_export",
    "do_finish_batch",
    "do_finish_export",
    "do_finish_index",
    "do_import_lookup_table",
    "do_issue_api_token",
    "do_publish_version",
    "do_record_account_saved",
    "do_record_api_token_refused",
    "do_record_group_changed",
    "do_reprocess_batch",
    "do_restore_version",
    "do_rollback",
    "do_run_tests",
    "do_save_draft",
    "do_save_patient_group",
    "do_start_batch",
    "do_start_export",
    "do_update_data_source",
    "do_update_facade",
    "do_update_lookup_table",
    "do_update_mapping",
    "do_update_sample",
    "do_update_snippet",
    "do_upload_definition",
    "do_upload_package",
    "do_upload_records",
]
