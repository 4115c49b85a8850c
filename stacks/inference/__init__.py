"""Event-driven inference: new image sets to the async endpoint, results back into HealthImaging."""
