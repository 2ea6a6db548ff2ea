"""Rasa custom actions (engine environment, run by the action server)."""
