"""The error every configuration check raises (its own module: the lake's lowest modules raise it
too, and must not import the checks), and storage's error for an S3 endpoint that does not
answer."""


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and what to set."""


class S3EndpointError(ConnectionError):
    """An S3 request got no answer (timed out or could not connect) on every attempt; the
    message names the endpoint, the limits and the variables that set them. Not a
    ``TimeoutError``: fsspec would replace that with its own, message-less, FSTimeoutError."""
