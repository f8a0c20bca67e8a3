"""The child's output capture in a process of its own: threads woken, records passed on."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import ROOT

# The capture in a process of its own, as the child uses it: fds 1 and 2 are the pipe's while a run goes on.
CAPTURE = """
import json, logging, os, threading, time
from tasker.manager.workhorse_capture import Capture

sent = []
capture = Capture()
send = lambda text: sent.append((threading.current_thread().name, text))
"""


QUIET_RUNS = """
def switches(thread):
    with open("/proc/self/task/%d/status" % thread.native_id) as status:
        return next(int(line.split()[1]) for line in status if line.startswith("voluntary_ctxt_switches"))

capture.start(send)
capture.finish()
pump = next(thread for thread in threading.enumerate() if thread.name == "output-pump")
before = -1
while before != switches(pump):  # until it waits in epoll
    before = switches(pump)
    time.sleep(0.05)
for _ in range(200):
    capture.start(send)
    capture.finish()
wakes = switches(pump) - before
capture.start(send)
print("written", flush=True)
os.write(2, b"to stderr\\n")
capture.finish()
print(json.dumps({"wakes": wakes, "sent": sent}))
"""


LOGGING_AT_THE_END = """
def slow_send(text):  # a manager slow to read: the record takes a while to get through
    send(text)
    time.sleep(0.002)

logging.getLogger().setLevel(logging.INFO)
capture.start(slow_send)
threading.Thread(target=lambda: logging.getLogger("busy").info("x" * 2**22)).start()
while not sent:  # the thread is writing its record, holding the log handler's lock
    time.sleep(0.001)
capture.finish()
print(json.dumps({"sent": sum(len(text) for _, text in sent)}))
"""


def run_capture(script: str) -> dict:
    command = [sys.executable, "-c", CAPTURE + script]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.stderr == ""
    return json.loads(done.stdout)


def test_a_run_that_writes_nothing_wakes_no_thread_and_what_is_left_at_its_end_goes_from_the_runs_thread():
    assert run_capture(QUIET_RUNS) == {"wakes": 0, "sent": [["MainThread", "written\nto stderr\n"]]}


def test_a_record_another_thread_is_logging_as_the_run_ends_is_passed_on_whole():
    header = len("2026-01-01 00:00:00,000 INFO busy: ")
    assert run_capture(LOGGING_AT_THE_END) == {"sent": header + 2**22 + 1}
