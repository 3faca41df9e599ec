"""Billing in the admin: plans, customers, subscriptions, invoices, payments, events and the revenue dashboard.

State changes go through ``billing.services`` (actions and the change-plan and refund pages are thin
callers); service errors are shown as admin messages or form errors, and nothing is half-written.
Importing the modules registers their admins.
"""

from billing.admin import catalogue, dashboard, events, invoices, payments, subscriptions

__all__ = ["catalogue", "dashboard", "events", "invoices", "payments", "subscriptions"]
