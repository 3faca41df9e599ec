"""Operations services, one module per domain: backups, restore, drills, retention, health, metrics."""
