"""The web console: pages for people, served by the platform and acting only through its HTTP API."""
