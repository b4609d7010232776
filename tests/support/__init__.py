"""Helpers shared by the test folders (on sys.path through pytest's `pythonpath`)."""
