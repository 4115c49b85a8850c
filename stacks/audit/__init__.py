"""The audit stack: the CloudTrail trail of patient-data access."""
