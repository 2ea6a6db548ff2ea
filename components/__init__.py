"""Custom Rasa NLU components (engine environment): Thai tokenizer, message signals, safety net."""
