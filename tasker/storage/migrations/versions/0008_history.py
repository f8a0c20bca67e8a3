"""History: indexes for listing a type's tasks newest first, filtered.

Revision ID: 0008
Revises: 0007

`GET /<type>` reads a type's tasks in (start_time, id) order, newest first, from
`ix_task_type_start`, or from `ix_task_type_status_start` when it filters on a status: a page
is one range of either, however many tasks the table holds. `ix_task_response_endpoint` finds
the tasks that name an endpoint when they are few. `ix_task_status_modified` and
`ix_task_response_state_modified` let `/metrics` count what settled or ended within its window
without reading the history. Retention (`api.retention_days`) reads the
oldest tasks of each type from `ix_task_type_start` too. On MariaDB the indexes are built in
place, without locking the tables.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_type_start", "task", ["type", "start_time", "id"])
    op.create_index("ix_task_type_status_start", "task", ["type", "status", "start_time", "id"])
    op.create_index("ix_task_response_endpoint", "task_response", ["endpoint", "task_id"])
    op.create_index("ix_task_status_modified", "task", ["status", "last_modified_time"])
    op.create_index("ix_task_response_state_modified", "task_response", ["state", "last_modified_time"])


def downgrade() -> None:
    op.drop_index("ix_task_response_state_modified", table_name="task_response")
    op.drop_index("ix_task_status_modified", table_name="task")
    op.drop_index("ix_task_response_endpoint", table_name="task_response")
    op.drop_index("ix_task_type_status_start", table_name="task")
    op.drop_index("ix_task_type_start", table_name="task")
