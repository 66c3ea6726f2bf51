"""Dataverse sandbox tests."""
