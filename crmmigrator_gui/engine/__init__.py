"""The migration engine. It must never import Qt (enforced by import-linter and a test)."""
