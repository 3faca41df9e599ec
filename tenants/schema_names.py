"""The schema-name rules live with the organisation (``ghostcrm.organizations.schema_names``).

Kept importable here because migration ``tenants.0001_initial`` names ``tenants.schema_names.validate_schema_name``.
"""

from ghostcrm.organizations.schema_names import (
    RESERVED_KEYWORDS,
    RESERVED_SCHEMAS,
    SCHEMA_NAME_RE,
    schema_name_from_slug,
    validate_schema_name,
)

__all__ = ["RESERVED_KEYWORDS", "RESERVED_SCHEMAS", "SCHEMA_NAME_RE", "schema_name_from_slug", "validate_schema_name"]
