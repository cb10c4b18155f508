"""User-facing errors: the command line prints their one sentence, never a traceback."""


class EffdlError(Exception):
    """A problem the user can fix (bad file, bad argument); str(err) is one clear sentence."""


class DataError(EffdlError):
    """A data or model file is missing, truncated, corrupt or malformed; the message names it."""


class ConfigError(EffdlError):
    """A configuration value or parameter is invalid; the message names it and says why."""
