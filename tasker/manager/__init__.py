"""The manager: consumes one endpoint's queue for one task type and runs its handler module."""
