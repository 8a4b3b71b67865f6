from shadowdiff.cli import entry_point

entry_point()
