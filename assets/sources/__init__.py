"""Source mechanisms, written once and domain-agnostic; a domain declares instances of them.

Each sub-package has one public entry point (a Dagster Component): ``kafka_topic``, ``mongo_collection``,
``landing_feed``. Nothing here names a domain's table, topic, collection or folder.
"""
