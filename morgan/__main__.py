from morgan.cli import entry_point

entry_point()
