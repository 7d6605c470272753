"""Test support code shared by several test packages (real servers, helpers); not tests."""
