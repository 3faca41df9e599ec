"""The ``json`` serialization format, with encrypted fields as ciphertext."""

from django.core.serializers import json
from django.core.serializers.json import Deserializer

from ghostcrm.core.serializers import EncryptedFieldsMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(EncryptedFieldsMixin, json.Serializer):
    pass
