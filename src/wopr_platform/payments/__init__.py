"""The adapter to the payment provider, Stripe: the one place that imports its client library."""
