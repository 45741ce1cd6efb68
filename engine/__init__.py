"""Frontier's core: specs, search spaces, searchers, Pareto tools and exploration."""
