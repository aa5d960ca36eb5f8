"""The local backend: a dispatcher per API process, job records in SQLite, one process per job."""
