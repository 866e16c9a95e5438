"""The AI providers adapter: the only code that uses the providers' official SDKs (`openai`, `anthropic`)."""
