"""Rehearsing on a local fleet: the demo overcloud and its invariants."""
