"""Persistence: the built-in activity store (CRM side) and syncd's own sync state."""
