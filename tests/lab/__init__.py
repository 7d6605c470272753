"""Tests of monitor.lab: the scenario format, the namespaces, a recorded run and its truth."""
