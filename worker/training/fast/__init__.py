"""The fast engine: whole training runs compiled with JAX, many trials at once as one vectorized program."""
