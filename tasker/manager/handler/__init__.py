"""Task handler modules: `<task_type>.py` defines `handle_task(task, taskResponse)`."""
