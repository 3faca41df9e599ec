"""Logging filters (``settings.LOGGING``)."""

from __future__ import annotations

import logging


class ClientErrorWithoutTraceback(logging.Filter):
    """A 4xx answer (403 Permission denied, 404, 405...) is logged as one line, without the exception's traceback.

    Django logs these with ``exc_info``; the traceback of an expected refusal only buries real errors. 5xx
    records keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info, record.exc_text = None, None
        return True
