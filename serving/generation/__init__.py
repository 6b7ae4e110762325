"""Pure building blocks of the LLM decoder's generation: request sampling parameters, stop strings, token selection."""
