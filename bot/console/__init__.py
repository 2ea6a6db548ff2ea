"""The counsellor console: sign-in, the queue, conversations, supervision (docs/HANDOFF.md)."""
