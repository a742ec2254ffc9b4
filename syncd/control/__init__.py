"""The control socket: its HTTP wire format, routes, server, client and events."""
