"""vlm-gateway: the one public HTTP endpoint of a deployment. OpenAI-compatible chat completions and embeddings,
the REST routes of the original design, health, readiness, metrics and a playground page, in front of Triton,
which it calls over one shared gRPC channel with ``client.AsyncVLMClient``. Imports ``client`` only."""
