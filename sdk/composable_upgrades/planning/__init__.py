"""Deciding what runs: stages, steps, role plays, dependencies, variables, converge work."""
