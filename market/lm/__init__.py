"""Token-level language models: replies are tuples of token ids of one tokenizer, scored exactly."""
