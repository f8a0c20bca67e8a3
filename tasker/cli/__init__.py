"""Operator entry points: `bin/api`, `bin/manager`, `bin/initialize`, `bin/supervisord`, `bin/supervisorctl`."""
