"""Warm handoff: a person takes the chat over from the bot (docs/HANDOFF.md)."""
