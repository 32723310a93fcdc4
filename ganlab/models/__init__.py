"""Generator and discriminator families. Shapes are constructor arguments, never config or globals."""
