"""Lambda handler code deployed as a plain asset folder (boto3 from the runtime, no bundling).

Each handler module is self-contained: Lambda loads it as a top-level module, the tests as a package module.
"""
