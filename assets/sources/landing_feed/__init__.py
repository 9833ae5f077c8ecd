"""Landing-file feed: a folder of the landing zone declared as a source (see :class:`LandingFileFeed`).

Declare one in ``assets/defs/<domain>/<source>/defs.yaml`` with
``type: assets.sources.landing_feed.LandingFileFeed``; the reader and hooks it names follow
:mod:`assets.sources.landing_feed.contract`. ``AUDIT_COLUMNS`` (appended to every landed row and
reject) and ``REJECTS_COLUMNS`` (a rejects table) are the declared DDL, for a domain that creates a
feed's tables ahead of its first file.
"""

from assets.sources.landing_feed._component import LandingFileFeed
from assets.sources.landing_feed._tables import AUDIT_COLUMNS, REJECTS_COLUMNS

__all__ = ["AUDIT_COLUMNS", "REJECTS_COLUMNS", "LandingFileFeed"]
