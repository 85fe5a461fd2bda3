"""Errors a user can meet: each message names the file, URL or field and what to do."""


class VocalsepError(Exception):
    """Base for errors reported to the user as one readable message, without a traceback."""


class AudioError(VocalsepError):
    """Audio that cannot be decoded, is empty, or is silent."""


class StageError(VocalsepError):
    """A pipeline stage that cannot go on (too little valid data, a missing input)."""
