"""The subcommands of `wopr`, one module per part of the API."""
