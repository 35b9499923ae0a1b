from sockscope.cli import entry

entry()
