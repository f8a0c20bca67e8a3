"""tasker: fan a task out to named endpoints over RabbitMQ and collect each endpoint's result."""

from setuptools import find_packages, setup

setup(
    name="tasker",
    version="1.0.0",
    description="Distribute tasks to named endpoints and collect each endpoint's result",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    package_data={
        "tasker.storage": ["migrations/*.py", "migrations/*.mako", "migrations/versions/*.py"],
        # The dashboard's page, script and style, served as they are by GET /ui.
        "tasker.dashboard": ["static/*"],
    },
    install_requires=[
        "tornado>=6.3,<7",
        "pika>=1.3,<2",
        "SQLAlchemy>=2.0,<3",
        "PyMySQL>=1.1",
        "PyYAML>=6",
        "supervisor>=4.2,<5",
        "alembic>=1.12",
        # GET /metrics: the Prometheus text format and its metric families.
        "prometheus-client>=0.20,<1",
        # The `tasker` command: its arguments, and its live table on a terminal.
        "click>=8.1,<9",
        "rich>=13,<15",
    ],
    extras_require={
        "test": ["pytest>=8", "ruff", "schemathesis>=4,<5", "openapi-spec-validator", "jsonschema>=4.18",
                 # The dashboard's tests drive the system's Chromium (no browser download).
                 "playwright>=1.45,<2"],
        # `make bench`: the Celery peer it measures tasker against (bench/celery_peer.py).
        "bench": ["celery[sqlalchemy]>=5.3,<6"],
    },
    entry_points={
        "console_scripts": [
            "tasker = tasker.client.main:main",
            "tasker-api = tasker.cli.api:main_entry",
            "tasker-manager = tasker.cli.manager:main_entry",
            "tasker-initialize = tasker.cli.initialize:main_entry",
            "tasker-supervisord = tasker.cli.supervisor:supervisord_entry",
            "tasker-supervisorctl = tasker.cli.supervisor:supervisorctl_entry",
        ],
        "zc.buildout": ["supervisor = tasker.buildout_recipe:SupervisorConfigRecipe"],
    },
)
