"""HealthImaging data store, its import role, and the event-driven ingestion functions."""
