"""Typed system settings editable in the admin.

Each app declares the settings it reads with ``register(SettingSpec(...))`` in its ``AppConfig.ready``; the
``SystemSetting`` table stores only values an admin changed. ``setting_value(key)`` returns the stored
value parsed to its type, or the declared default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError

from ghostcrm.core.models import SystemSetting

SettingType = type[int] | type[bool] | type[str] | type[Decimal] | type[list]


@dataclass(frozen=True)
class SettingSpec:
    key: str
    type: SettingType
    default: Any
    help_text: str
    min_value: int | Decimal | None = None
    max_value: int | Decimal | None = None
    choices: tuple[str, ...] = ()
    validators: tuple[Callable[[Any], None], ...] = field(default=())

    def parse(self, raw: str) -> Any:
        """Parse and validate the admin's text; raise ``ValidationError`` with a sentence on bad input."""
        text = raw.strip()
        value: Any
        try:
            if self.type is bool:
                lowered = text.lower()
                if lowered not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
                    raise ValueError
                value = lowered in {"true", "1", "yes", "on"}
            elif self.type is int:
                value = int(text)
            elif self.type is Decimal:
                value = Decimal(text)
                if not value.is_finite():
                    raise ValueError
            elif self.type is list:
                value = json.loads(text)
                if not isinstance(value, list):
                    raise ValueError
            else:
                value = text
        except (ValueError, InvalidOperation, json.JSONDecodeError):
            raise ValidationError(f"{self.key} expects {self.type_name}; {raw!r} is not one.") from None
        if self.min_value is not None and value < self.min_value:
            raise ValidationError(f"{self.key} must be at least {self.min_value}.")
        if self.max_value is not None and value > self.max_value:
            raise ValidationError(f"{self.key} must be at most {self.max_value}.")
        if self.choices and value not in self.choices:
            raise ValidationError(f"{self.key} must be one of {', '.join(self.choices)}.")
        for validator in self.validators:
            validator(value)
        return value

    def serialize(self, value: Any) -> str:
        if self.type is bool:
            return "true" if value else "false"
        if self.type is list:
            return json.dumps(value)
        return str(value)

    def normalise(self, raw: str) -> str:
        """``raw`` parsed and written back in canonical form; Django's ValidationError naming ``value`` if not."""
        try:
            return self.serialize(self.parse(raw))
        except ValidationError as exc:
            raise ValidationError({"value": exc.messages}) from None

    @property
    def type_name(self) -> str:
        return {bool: "true or false", int: "a whole number", Decimal: "a decimal number", list: "a JSON list"}.get(
            self.type, "text"
        )


REGISTRY: dict[str, SettingSpec] = {}
SystemSetting.spec_lookup = REGISTRY.get  # the model validates against the declarations without importing them


def register(*specs: SettingSpec) -> None:
    for spec in specs:
        existing = REGISTRY.get(spec.key)
        if existing is not None and existing != spec:
            raise RuntimeError(f"system setting {spec.key!r} is declared twice with different specs")
        REGISTRY[spec.key] = spec


def get_spec(key: str) -> SettingSpec:
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown system setting {key!r}; declare it with register()") from None


def setting_value(key: str) -> Any:
    """The current value of a system setting (stored, else its default)."""
    spec = get_spec(key)
    raw = SystemSetting.objects.filter(key=key).values_list("value", flat=True).first()
    return spec.default if raw is None else spec.parse(raw)
