"""pydantic models of every request and response body the gateway speaks."""
