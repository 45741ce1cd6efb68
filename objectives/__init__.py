"""Problems to optimise: each a class with a parameter space, metrics and ``evaluate``."""
