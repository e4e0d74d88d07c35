"""`colorize eval` (placeholder until the eval issue lands)."""


def evaluate():
    """Measure a trained network against colour photos."""
    raise NotImplementedError
