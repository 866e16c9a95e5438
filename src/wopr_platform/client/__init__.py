"""The `wopr` command line: a client of the platform's REST API that imports nothing of the server."""
