"""The ``python`` serialization format, with encrypted fields as ciphertext."""

from django.core.serializers import python
from django.core.serializers.python import Deserializer

from ghostcrm.core.serializers import EncryptedFieldsMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(EncryptedFieldsMixin, python.Serializer):
    pass
