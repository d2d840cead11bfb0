"""Errors raised by the LLM client, after the SDK's own retries are spent.

Messages are written by us from the status code and the error kind, never copied from
the response body or the request, so they cannot carry the API key or the prompt. The
SDK exception stays reachable as ``__cause__`` for debugging. The subclasses name the
condition rather than carry an ``Error`` suffix, like PTB's ``RetryAfter``.
"""

from core.errors import OnethreadError


class LLMError(OnethreadError):
    """The language model could not give an answer (also: the endpoint refused the request).

    ``status_code`` is the HTTP status when the endpoint answered with one.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMUnavailable(LLMError):  # noqa: N818
    """The endpoint answered 5xx, could not be reached, or dropped the connection."""


class LLMRateLimited(LLMError):  # noqa: N818
    """The endpoint answered 429; ``retry_after`` is its hint in seconds, if it gave one."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status_code: int | None = 429
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class LLMTimeout(LLMError):  # noqa: N818
    """The endpoint did not answer within the configured timeout."""


class LLMBadResponse(LLMError):  # noqa: N818
    """The endpoint answered, but the payload was malformed or held no usable answer."""
