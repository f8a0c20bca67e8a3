"""tasker: fan a task out to named endpoints and collect each endpoint's result."""

__version__ = "1.0.0"
