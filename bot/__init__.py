"""The gateway: channels in front of Rasa, rendering, handoff and storage."""
