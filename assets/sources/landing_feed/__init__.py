"""Landing-file feed: a folder of the landing zone declared as a source (see :class:`LandingFileFeed`).

Declare one in ``assets/defs/<domain>/<source>/defs.yaml`` with
``type: assets.sources.landing_feed.LandingFileFeed``; the reader and hooks it names follow
:mod:`assets.sources.landing_feed.contract`.
"""

from assets.sources.landing_feed._component import LandingFileFeed

__all__ = ["LandingFileFeed"]
