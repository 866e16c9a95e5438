"""The host firewall adapter (iptables): the platform's own chains that keep bots off the host's addresses."""
