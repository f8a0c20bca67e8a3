"""Task handler modules kept outside `tasker`, as a team keeps its own (see README)."""
