"""Cross-cutting pieces of the API process: configuration, problem documents, middleware,
logging, metrics and the Redis-outage translation."""
