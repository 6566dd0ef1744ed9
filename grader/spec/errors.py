"""Errors for bad input from the user, kept free of torch so the CLIs can catch them cheaply.

Each subclasses the built-in it refines; the CLIs print the message alone, without a traceback.
"""


class UsageError(Exception):
    """Bad input from the user; the CLI prints the message alone."""


class ModelNotFoundError(UsageError, FileNotFoundError):
    pass


class UnsupportedModelError(UsageError, TypeError):
    pass


class DeviceUnavailableError(UsageError, RuntimeError):
    pass
