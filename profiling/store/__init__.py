"""Persistence: the SQLite run store, its damage recovery and the portable run bundle."""
