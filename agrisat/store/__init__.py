"""The publish store: published runs, current limits, API keys, audit log, push deliveries.

SQLite file by default (``sqlite:///<runs dir>/agrisat.db``), PostgreSQL by URL; see db.py for how
both give readers one consistent snapshot, and publish.py for the one-transaction publish.
"""

from agrisat.store.db import init_schema, make_engine, read_tx, write_tx
from agrisat.store.publish import Published, publish_run

__all__ = ["Published", "init_schema", "make_engine", "publish_run", "read_tx", "write_tx"]
