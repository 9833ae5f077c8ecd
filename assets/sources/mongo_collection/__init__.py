"""MongoDB collection source: bounded, watermarked batches of a collection into raw + rejects tables.

Declared in ``assets/defs/<domain>/<source>/defs.yaml`` as ``assets.sources.mongo_collection.
MongoCollectionSource``. Internals (keyset ranges, the durable watermark, planning, reading, the
transactional merge, the asset and its sensor, the DDL) live in this package's private modules.
"""

from assets.sources.mongo_collection._component import MongoCollectionSource

__all__ = ["MongoCollectionSource"]
