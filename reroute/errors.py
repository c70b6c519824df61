"""Errors that reach the user as one clear line.

Every problem caused by the user's input (a file that is not an image, a photo
with no person, ...) raises :class:`InputError` or a subclass. The CLI prints
``error: <message>`` on stderr and exits with code 2; the Gradio app shows the
message in place. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input; ``str(err)`` is a single human-readable sentence."""


class NotAnImageError(InputError):
    """The file is empty, truncated, or not a decodable image."""


class ImageTooSmallError(InputError):
    """The image's shorter side is below the minimum (64 px)."""


class NoPersonError(InputError):
    """No person was detected in the photo."""


class SeveralPersonsError(InputError):
    """More than one person was detected; reroute needs exactly one."""


class FitError(InputError):
    """The body model could not be fitted to the detected person."""
