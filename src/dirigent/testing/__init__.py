"""Helpers for users (and our own tests) to run workflows offline."""
