"""Files to queue: what is an image, what is complete, what changed, watching."""
