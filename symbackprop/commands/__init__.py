"""Subcommands of the symbackprop CLI, one module each."""
