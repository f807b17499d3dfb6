"""Errors shown to a person: the message is already translated."""
from __future__ import annotations


class LabkitError(Exception):
    """An error whose message is meant for the user (pt-BR or English).

    ``exit_code`` follows Docker's CLI: 125 for an error of labkit itself,
    126 when the command cannot be invoked, 127 when it is not found.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class NotFound(LabkitError):
    """An image, container or file that does not exist."""


class Conflict(LabkitError):
    """A name already in use, a container in the wrong state."""
