"""Signals the core sends so that higher layers can react without the core importing them."""

from __future__ import annotations

from django.dispatch import Signal

# Sent by `manage.py migrate` after it brought both databases (main and tenant) up to date, with
# ``aliases`` (the databases migrated). A receiver may return a sentence for the command to print.
databases_migrated = Signal()
