"""Lambda handlers of the approval stack (boto3 only: the asset folder is deployed as is)."""
