"""The gateway's routes: OpenAI-compatible, the original design's REST routes, and the service routes."""
