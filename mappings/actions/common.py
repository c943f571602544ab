"""What every action shares: the audit row each writes, and the error a draft that does not compile gets."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model

from mappings.engine import MappingError
from mappings.errors import StudioError
from mappings.models import (
    AuditAction,
    AuditEvent,
)


def audit(
    actor: AbstractBaseUser | None,
    action: AuditAction,
    obj: object,
    *,
    mapping_slug: str = "",
    before: dict | None = None,
    after: dict | None = None,
    **details: object,
) -> None:
    AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=type(obj).__name__,
        object_id=str(getattr(obj, "pk", "") or ""),
        mapping_slug=mapping_slug,
        before=before,
        after=after,
        details=details,
    )


def compile_error(error: MappingError) -> StudioError:
    return StudioError(
        "draft_does_not_compile",
        f"The draft does not compile: {error.message}",
        details={"errors": [error.as_dict()]},
    )


def apply_changes(obj: Model, fields: dict[str, object], allowed: tuple[str, ...]) -> dict[str, object]:
    """Set the allowed fields whose value differs and save just those (and updated_at). Returns their values before,
    for the audit row."""
    changed = [key for key, value in fields.items() if key in allowed and getattr(obj, key) != value]
    before = {key: getattr(obj, key) for key in changed}
    for key in changed:
        setattr(obj, key, fields[key])
    obj.save(update_fields=[*changed, "updated_at"])
    return before
