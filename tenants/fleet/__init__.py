"""The fleet of tenant database servers: a registry in the main database, its checks, commands and admin.

What exists today is the registry (see docs/fleet.md); placement, tiers, moves and the fan-out of the
template engine across servers are built on it later.
"""
