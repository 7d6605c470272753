"""Helpers shared by tests: real traffic generators and common checks."""
