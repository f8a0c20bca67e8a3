"""A run's output: what it writes and logs, kept up to `max_output`, watched and taken in
pieces while it runs, and what processes it left behind write."""

from __future__ import annotations

import re
import resource
import time

from tasker.manager.workhorse import RunOutput, RunState, WorkHorse
from tasker.manager.workhorse_output import OutputKeeper
from tests.handlers.horse import FAKE_RESULT, flood_block
from tests.helpers import wait_for
from tests.unit.real_horse import HANDLER, drive, drive_until, job


def flood(blocks: int, size: int) -> str:
    """What the "flood" action writes."""
    return "".join(flood_block(number, size) for number in range(blocks))


def test_stdout_stderr_a_subprocess_and_logging_are_the_runs_output_in_order(horse, capfd):
    outcome = horse.perform(job("mixed"))
    assert outcome.payload == "printed"
    one, two, three, four, five = outcome.output.text.splitlines()
    assert (one, two, three, five) == ("one", "two", "three", "five")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO horse: four", four)  # DEBUG left out
    assert outcome.output == RunOutput(outcome.output.text, len(outcome.output.text.encode()), False)
    assert capfd.readouterr() == ("", "")  # none of it on the manager's own stdout and stderr
    assert horse.perform(job("return", payload=1)).output == RunOutput()  # the next run starts afresh


def test_output_over_max_output_keeps_its_start_and_end_around_a_marker():
    horse = WorkHorse(HANDLER, {}, max_output=300)
    try:
        written = flood(10, 100)
        kept = written[:150] + "\n[... 700 bytes of output left out ...]\n" + written[-150:]
        assert horse.perform(job("flood", blocks=10, block=100)).output == RunOutput(kept, 1000, True)
        assert horse.perform(job("flood", blocks=3, block=100)).output == RunOutput(flood(3, 100), 300, False)
    finally:
        horse.close()


def test_a_50_mb_output_completes_and_only_max_output_of_it_is_kept():
    horse = WorkHorse(HANDLER, {}, max_output=2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    try:
        outcome = horse.perform(job("flood", blocks=50, block=1_000_000))
    finally:
        horse.close()
    left_out = "\n[... %d bytes of output left out ...]\n" % (50_000_000 - 2**20)
    kept = flood_block(0, 1_000_000)[: 2**19] + left_out + flood_block(49, 1_000_000)[-(2**19) :]
    assert outcome.payload == "flooded" and outcome.output == RunOutput(kept, 50_000_000, True)
    # Holding the output, or a good part of it, would have raised the peak by 50 MB at least.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 30 * 1024


def test_output_can_be_watched_and_taken_while_the_run_goes_on_and_the_rest_after_it(horse):
    assert horse.output_so_far() is None and horse.take_output() == ""
    horse.begin(job("cooperative"))
    drive_until(horse, lambda: horse.output_so_far().size > 0)
    assert horse.output_so_far() == RunOutput("waiting\n", 8, False)
    assert horse.take_output() == "waiting\n" and horse.take_output() == ""
    horse.cancel()
    outcome = drive(horse)
    assert outcome.output == RunOutput("waiting\nstopping\n", 17, False)
    assert horse.output_so_far() is None  # no run in hand
    assert horse.take_output() == "stopping\n" and horse.take_output() == ""


def test_the_pieces_taken_make_the_kept_text_and_are_cut_between_characters_only():
    keeper = OutputKeeper(40)
    written = ["ab\u20ac", "\U0001f600" * 5, "cd\n", "\u00e9" * 20, "end"]  # 71 bytes of UTF-8
    pieces = []
    for text in written:
        keeper.add(text)
        pieces.append(keeper.take(5))
    assert keeper.so_far(4) == RunOutput("\u00e9end", 71, True)
    kept = keeper.end()
    while piece := keeper.take(5):
        pieces.append(piece)
    head, tail = "ab\u20ac" + "\U0001f600" * 3, "\u00e9" * 8 + "end"  # 17 and 19 bytes
    assert kept == RunOutput(head + "\n[... 35 bytes of output left out ...]\n" + tail, 71, True)
    assert "".join(pieces) == kept.text and all(len(piece.encode()) <= 5 for piece in pieces)


def test_a_printed_line_that_looks_like_a_message_is_output_not_protocol(horse):
    outcome = horse.perform(job("fake_messages"))
    assert (outcome.state, outcome.payload) == (RunState.SUCCEEDED, "real")
    assert outcome.output.text == "".join((FAKE_RESULT % seq + "\n") * 2 for seq in range(5))


def test_a_process_left_holding_the_output_delays_the_end_half_a_second_at_most(horse, tmp_path):
    done = tmp_path / "done"
    began = time.monotonic()
    outcome = horse.perform(job("daemon", seconds=1.5, done=str(done)))
    assert time.monotonic() - began < 1.2
    assert outcome.output == RunOutput("early\n", 6, False)
    # It writes "late" after the run: dropped, not a SIGPIPE (it goes on to create the file).
    wait_for(done.exists, timeout=5, interval=0.02, what="the left process to write after the run")
    assert horse.perform(job("return", payload=1)).output == RunOutput()


def test_what_a_process_left_behind_writes_within_half_a_second_of_the_run_is_the_runs_output(horse, tmp_path):
    done = tmp_path / "done"
    outcome = horse.perform(job("daemon", seconds=0.1, done=str(done)))
    assert outcome.output == RunOutput("early\nlate\n", 11, False)
    assert done.exists()  # the run ended when the left process closed the output, not before
    assert horse.perform(job("print")).output.text == "to stdout from the handler\nto stderr from the handler\n"
