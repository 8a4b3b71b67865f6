"""The embedded demo: two entry points on loopback and the bundled scenario."""
