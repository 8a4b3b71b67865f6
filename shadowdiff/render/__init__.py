"""Reports for people: the terminal report, TLS tables and live progress. Renderers read the
report as data and never change it."""
