"""Making checkpoints: presets, tokenizer training, the shapes world, training loops and evaluations."""
