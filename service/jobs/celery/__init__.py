"""The Celery backend: Redis as broker and result store, `aeserve worker` processes train."""
