"""The backfill: an archive's image sets through the async endpoint on a Step Functions Distributed Map."""
