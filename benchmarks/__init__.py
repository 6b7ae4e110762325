"""Load generators and reports; ``decoder_batching`` measures what in-flight batching buys."""
