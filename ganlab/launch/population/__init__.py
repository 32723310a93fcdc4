"""launcher=population: the K jobs of a sweep trained as one batched program."""
