"""The ``yaml`` serialization format, with encrypted fields as ciphertext."""

from django.core.serializers import pyyaml
from django.core.serializers.pyyaml import Deserializer

from ghostcrm.core.serializers import EncryptedFieldsMixin

__all__ = ["Deserializer", "Serializer"]


class Serializer(EncryptedFieldsMixin, pyyaml.Serializer):
    pass
