"""Errors shared by file readers (pure Python) and the landing-zone ingest (Dagster)."""


class UnreadableFileError(Exception):
    """A file that cannot be parsed at all: it goes to quarantine with ``reason`` beside it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
