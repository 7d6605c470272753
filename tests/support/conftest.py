"""Registers the promstack fixtures for the tests of the support code itself."""

from tests.support.promstack import (  # noqa: F401  (pytest fixtures)
    alertmanager_factory,
    prometheus_factory,
    webhook_receiver,
)
