"""The console's pages and actions, one module per area (each exposes `routes`)."""
