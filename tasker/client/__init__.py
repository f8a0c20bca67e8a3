"""`tasker`: the operator's command-line client of the REST API (tasker.client.main)."""
