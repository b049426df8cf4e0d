"""Neural networks: the shared recurrent agent and the mixing networks."""
