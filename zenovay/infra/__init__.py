"""Plumbing: what keeps the server up under load and abuse, apart from the product's logic."""
