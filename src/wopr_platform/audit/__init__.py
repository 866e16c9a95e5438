"""The audit log: every mutating API call (who, tenant, action, target, outcome), stored and queryable."""
