"""Tenant routing: each bot reachable at `<subdomain>.<domain>` and `<domain>/instance/<id>/` through Caddy."""
