"""`tasker`: the operator's command-line client of the tasker REST API.

The API is `TASKER_URL` (default http://127.0.0.1:8888), the token `TASKER_TOKEN` (or `--url`,
`--token`). Every error is one line on stderr, `tasker: <what>`; the exit status is as
tasker.client.outcome says.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

import click

from tasker import __version__
from tasker.client import arguments
from tasker.client.api_client import ApiClient
from tasker.client.errors import BROKEN_PIPE, INTERRUPTED, USAGE, ClientError, Interrupted, PipeClosed, Unreachable
from tasker.client.live import follow_task
from tasker.client.options import TYPE_ARGUMENT, checked, json_option, task_arguments, wait_option
from tasker.client.outcome import task_exit_status
from tasker.client.render import endpoints_table, print_json, show, stdout_console, task_table, tasks_table, write_line
from tasker.client.task_view import OPEN, seconds_since_start, summary_text

DEFAULT_URL = "http://127.0.0.1:8888"
# click 8.2 raises it for a group called without a command (8.1 prints the help and returns).
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class TaskerGroup(click.Group):
    """The command group; Ctrl-C and a closed stdout leave the command as exceptions of its own,
    before click turns them into a blank line or a status of its choosing."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except BrokenPipeError:
            raise PipeClosed() from None


@click.group(cls=TaskerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="TASKER_URL", default=DEFAULT_URL, show_default=True, help="The API (env TASKER_URL).")
@click.option("--token", envvar="TASKER_TOKEN", default=None, help="Bearer token (env TASKER_TOKEN).")
@click.option("--verbose", "-v", is_flag=True, help="Log each request and the event stream to stderr.")
@click.version_option(__version__, prog_name="tasker")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, verbose: bool) -> None:
    """Submit, follow and operate tasker tasks through its REST API.

    Exit status: 0 all endpoints succeeded (or the command did what it asked), 1 an endpoint
    failed or timed out, 2 bad usage or a request the API refused, 3 incomplete, cancelled,
    skipped, missing or not settled yet, 4 the API cannot be reached.
    """
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="tasker: %(asctime)s %(name)s: %(message)s")
    ctx.obj = ApiClient(url, token)


@cli.command()
@TYPE_ARGUMENT
@click.option(
    "--identifier",
    "-i",
    callback=checked(arguments.name_value, "--identifier"),
    help="The task's identifier (default: a new UUID, printed).",
)
@click.option("--payload", "-p", help="The payload as JSON text, or @file (@- for stdin).")
@click.option("--endpoint", "-e", "endpoints", multiple=True, help="An endpoint (repeat, or comma-separated).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds one endpoint's run may take.")
@click.option("--max-concurrency", help="At most this many endpoints at once: N or a percentage (25%).")
@click.option("--max-errors", help="Skip the rest once more than this many failed: N or a percentage.")
@wait_option
@json_option
@click.pass_obj
def submit(client: ApiClient, task_type: str, identifier: str | None, wait: bool, as_json: bool, **options) -> int:
    """Create a task of TYPE."""
    generated = identifier is None
    identifier = identifier or arguments.new_identifier()
    body = arguments.submit_body(identifier, **options)
    try:
        status, task = client.submit(task_type, body)
    except Unreachable as exc:
        if generated and not isinstance(exc.__cause__, (ConnectionRefusedError, socket.gaierror)):
            # Whether the API stored it is unknown: the same POST again is safe.
            exc.args = (
                "%s; the task's identifier was %s (--identifier %s submits it again safely)"
                % (exc, identifier, identifier),
            )
        raise
    if not (wait and as_json):
        _say(as_json, task, _submitted(status, task))
    return follow_task(client, task_type, identifier, as_json) if wait else 0


def _submitted(status: int, task: dict) -> str:
    where = "%s/%s" % (task.get("type"), task.get("identifier"))
    shown = ", ".join(task.get("endpoints") or []) or "no endpoints"
    if status == 200:
        return "%s was submitted before with the same content (%s): %s" % (where, task.get("status"), shown)
    if status == 202:
        return "%s is stored, not yet sent (CREATED): the API sends it to %s" % (where, shown)
    return "%s %s: %s" % (where, task.get("status"), shown)


@cli.command()
@task_arguments
@json_option
@click.pass_obj
def get(client: ApiClient, task_type: str, identifier: str, as_json: bool) -> int:
    """Show a task and its endpoints; exit by its outcome."""
    view = client.task(task_type, identifier)
    if as_json:
        print_json(view)
    else:
        console = stdout_console()
        show(console, task_table(console, view, summary_text(view, seconds_since_start(view))))
    return task_exit_status(view)


@cli.command()
@task_arguments
@json_option
@click.pass_obj
def watch(client: ApiClient, task_type: str, identifier: str, as_json: bool) -> int:
    """Follow a task until it settles; exit by its outcome."""
    return follow_task(client, task_type, identifier, as_json)


@cli.command(name="list")
@TYPE_ARGUMENT
@click.option("--status", help="CREATED, SENT, DONE, INCOMPLETE or CANCELLED.")
@click.option("--endpoint", help="Tasks that name this endpoint.")
@click.option("--state", help="Tasks with a response in this state (of --endpoint, if given).")
@click.option("--since", help="Created at or after: YYYY-MM-DD [HH:MM:SS], UTC.")
@click.option("--until", help="Created at or before: YYYY-MM-DD [HH:MM:SS], UTC.")
@click.option("--identifier", help="Identifiers starting with this text.")
@click.option("--limit", type=click.IntRange(1, arguments.LIST_LIMIT), help="Tasks per page (API default 50).")
@click.option("--cursor", help="The page after this one (the `next` of a page).")
@click.option("--all", "every_page", is_flag=True, help="Follow `next` to the last page.")
@json_option
@click.pass_obj
def list_tasks(client: ApiClient, task_type: str, every_page: bool, as_json: bool, **filters) -> int:
    """List tasks of TYPE, newest first."""
    query = arguments.list_query(filters)
    page = client.tasks(task_type, query)
    tasks = list(page.get("tasks") or [])
    while every_page and page.get("next"):
        page = client.tasks(task_type, dict(query, cursor=page["next"]))
        tasks += page.get("tasks") or []
    if as_json:
        print_json(dict(page, tasks=tasks) if every_page else page)
        return 0
    console = stdout_console()
    show(console, tasks_table(console, tasks))
    if page.get("next"):
        write_line("more: %s (or --all)" % arguments.next_page_command(task_type, filters, page["next"]))
    return 0


@cli.command()
@task_arguments
@click.option(
    "--endpoint",
    "-e",
    required=True,
    callback=checked(arguments.name_value, "--endpoint"),
    help="The endpoint whose output to print.",
)
@click.option("--run", type=click.IntRange(min=1), help="An earlier run (default: the current one).")
@click.pass_obj
def output(client: ApiClient, task_type: str, identifier: str, endpoint: str, run: int | None) -> int:
    """Print what an endpoint's run wrote, byte for byte."""
    headers, chunks = client.output(task_type, identifier, endpoint, run)
    sink = sys.stdout.buffer
    written = 0
    for chunk in chunks:
        sink.write(chunk)
        sink.flush()
        written += len(chunk)
    state = headers.get("x-tasker-run-state", "")
    if not written and state in OPEN:
        click.echo(
            "tasker: run %s on %s is %s: its output is kept when it ends (`tasker get` shows its last lines)"
            % (headers.get("x-tasker-run", "?"), endpoint, state),
            err=True,
        )
    return 0


@cli.command()
@task_arguments
@click.option(
    "--endpoints",
    "-e",
    multiple=True,
    help="failed (default), missing, all, unfinished, or endpoint names (repeat, or comma-separated).",
)
@click.option("--after-run", type=click.IntRange(min=0), help="Start nothing if a run after N exists (safe repeat).")
@wait_option
@json_option
@click.pass_obj
def retry(client: ApiClient, task_type: str, identifier: str, endpoints, after_run, wait: bool, as_json: bool) -> int:
    """Start new runs of a task for the endpoints selected."""
    status, task = client.retry(task_type, identifier, arguments.retry_body(endpoints, after_run))
    if not (wait and as_json):
        where = "%s/%s" % (task_type, identifier)
        started = "new runs started" if status == 202 else "nothing new: a run after %s exists already" % after_run
        _say(as_json, task, "%s %s: %s" % (where, task.get("status"), started))
    return follow_task(client, task_type, identifier, as_json) if wait else 0


@cli.command()
@task_arguments
@wait_option
@json_option
@click.pass_obj
def cancel(client: ApiClient, task_type: str, identifier: str, wait: bool, as_json: bool) -> int:
    """Cancel a task: endpoints not started are skipped, running ones told to stop."""
    _, task = client.cancel(task_type, identifier)
    if not (wait and as_json):
        _say(as_json, task, "%s/%s %s: cancel recorded" % (task_type, identifier, task.get("status")))
    return follow_task(client, task_type, identifier, as_json) if wait else 0


@cli.command()
@click.option(
    "--type",
    "task_type",
    callback=checked(arguments.task_type_value, "--type"),
    help="Only the endpoints of this type.",
)
@json_option
@click.pass_obj
def endpoints(client: ApiClient, task_type: str | None, as_json: bool) -> int:
    """List the registered endpoints and their liveness."""
    body = client.endpoints(task_type)
    if as_json:
        print_json(body)
    else:
        console = stdout_console()
        show(console, endpoints_table(console, body.get("endpoints") or []))
    return 0


def _say(as_json: bool, body: dict, line: str) -> None:
    if as_json:
        print_json(body)
    else:
        write_line(line)


def main(argv: list[str] | None = None) -> int:
    """Run the command; its exit status."""
    try:
        status = cli.main(args=argv, prog_name="tasker", standalone_mode=False)
    except NO_ARGS_IS_HELP as exc:  # `tasker` alone: its help, on stdout
        click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
        return USAGE
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "tasker"
        return _fail("%s (see %s --help)" % (exc.format_message(), where), USAGE)
    except click.ClickException as exc:
        return _fail(exc.format_message(), USAGE)
    except ClientError as exc:
        return _fail(str(exc), exc.exit_status)
    except (click.Abort, KeyboardInterrupt):
        return _fail("interrupted", INTERRUPTED)
    except (PipeClosed, BrokenPipeError):
        # Nothing more can be written to stdout, and Python's own flush at exit must not try.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
    return status if isinstance(status, int) else 0


def _fail(message: str, status: int) -> int:
    first_line = " ".join(str(message).split())
    try:
        print("tasker: %s" % first_line, file=sys.stderr, flush=True)
    except OSError:
        pass
    return status
