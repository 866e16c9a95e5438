"""Automated image updates: registry checks per reference, update policies, health-gated updates, rollouts."""
