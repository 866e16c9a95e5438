"""Backups of bots' data volumes: sealed archives, where they are kept, and restoring them."""
