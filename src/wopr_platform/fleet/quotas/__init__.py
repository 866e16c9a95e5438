"""Quotas of each tenant: how many bots, and how much memory and CPU in all, its bots may hold."""
