"""Before/after snapshots for the audit log: concrete fields (secrets redacted) plus a model's own extras.

A model may define ``audit_snapshot_extra() -> dict`` to add facts its redacted fields hide, e.g. which
secret names are set (never their values).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from ghostcrm.audit.services import model_snapshot


def snapshot(obj: models.Model) -> dict[str, Any]:
    data = model_snapshot(obj)
    extra = getattr(obj, "audit_snapshot_extra", None)
    if callable(extra):
        data.update(json.loads(json.dumps(extra(), cls=DjangoJSONEncoder)))
    return data
