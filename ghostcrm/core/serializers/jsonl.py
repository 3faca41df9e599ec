"""The ``jsonl`` serialization format, with encrypted fields as ciphertext."""

from django.core.serializers import jsonl
from django.core.serializers.jsonl import Deserializer

from ghostcrm.core.serializers import EncryptedFieldsMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(EncryptedFieldsMixin, jsonl.Serializer):
    pass
