"""Errors a user can act on. Each message names the file or name at fault and the fix."""

from __future__ import annotations


class UserError(Exception):
    """Base of every expected failure; the CLI prints it without a traceback (exit code 2)."""
