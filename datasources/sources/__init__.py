"""Price sources the server polls: OpenRouter, LiteLLM's price map, a local file, a recorded replay."""
