"""Base class for our management commands: ``ApplicationError`` becomes a ``CommandError`` sentence."""

from __future__ import annotations

import json
from abc import ABCMeta, abstractmethod
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder

from ghostcrm.core.errors import ApplicationError


class ServiceCommand(BaseCommand, metaclass=ABCMeta):
    """Subclasses implement ``run``; errors from services are shown as one line, exit status 1."""

    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            return self.run(*args, **options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    @abstractmethod
    def run(self, *args: Any, **options: Any) -> str | None: ...

    def write_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2, sort_keys=True))
