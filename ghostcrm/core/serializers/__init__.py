"""Django's serializers, with encrypted fields exported as ciphertext (``fernet:<token>``), never plaintext.

Django's python-based serializers (python, json, jsonl, yaml) pass a string or number through untouched
instead of asking the field for its string form, so an ``EncryptedTextField`` would be dumped decrypted.
These subclasses ask encrypted fields for ``value_to_string`` (the ``fernet:`` form); every other field is
serialized exactly as Django does. The XML serializer always asks the field, so it needs no change.
Installed for ``dumpdata`` / ``loaddata`` / ``serializers.serialize`` by ``SERIALIZATION_MODULES``.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class EncryptedFieldsMixin:
    def _value_from_field(self, obj: models.Model, field: models.Field[Any, Any]) -> Any:
        if getattr(field, "encrypted", False):
            return field.value_to_string(obj)
        return super()._value_from_field(obj, field)  # type: ignore[misc]
