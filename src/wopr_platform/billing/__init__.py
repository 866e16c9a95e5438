"""Billing: credits in a double-entry ledger, bought through Stripe, spent by running bots; the payment gate."""
