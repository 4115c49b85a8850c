"""Approval deploys: an approved model package replaces the async endpoint's model and joins the Triton models."""
