"""Learners: losses, target networks and optimisers."""
