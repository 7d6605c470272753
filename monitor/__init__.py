"""Santinel: a passive network monitor for medical devices.

The import package is ``monitor``; the distribution and command are ``santinel``.
"""

__version__ = "0.1.0"
