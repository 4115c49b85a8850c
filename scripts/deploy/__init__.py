"""`make deploy`: the platform from a bootstrapped account in one command (steps.py), and its offline rehearsal."""
