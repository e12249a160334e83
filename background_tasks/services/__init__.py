"""Maintenance services: retention, token cleanup, reports, backups, failure alerts."""
