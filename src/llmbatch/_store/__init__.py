"""What survives the process: the SQLite job store (items, requests, metrics), the
content-hash result cache, ingest (records to stored items) and the job directory lock."""
