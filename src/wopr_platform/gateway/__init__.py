"""The metered AI gateway: keys, routing to providers, reservations, metering and charges of calls."""
