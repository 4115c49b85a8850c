"""`make review BASE=<ref>`: synthesize the base and the working tree and report the infrastructure change."""
