"""Admission rules for Grove's API as pure functions: objects in, field errors and warnings out."""

from .result import Result

__all__ = ["Result"]
