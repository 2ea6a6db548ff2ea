"""Channel adapters: each turns a platform's requests into channel-neutral messages and back."""
