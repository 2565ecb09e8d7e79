"""``growth serve``'s ingestion wakes its child worker process at once (a signal), and never before the child can
take the signal (its default action would end the child); a worker told to stop (SIGTERM) stops, whatever its main
thread was doing when the signal came."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from growthengine.pipeline.child import ChildWorker
from growthengine.settings import Settings
from tests.waiting import wait_until

# A stand-in for ``growth worker``: it takes the wake signal only once told to (a file appears), and counts wakes.
_CHILD = """
import pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
while not (folder / "handle").exists():
    time.sleep(0.01)
wakes = folder / "wakes"
signal.signal(signal.SIGUSR1, lambda *_: wakes.write_text(str(int(wakes.read_text() or 0) + 1) if wakes.exists()
                                                          else "1"))
(folder / "ready").write_text("yes")
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def child(tmp_path: Path) -> Iterator[tuple[ChildWorker, threading.Event, Path]]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path)])
    wake = threading.Event()
    worker = ChildWorker(Settings(db_url=f"sqlite:///{tmp_path}/x.db", data_dir=tmp_path / "data"), proc, wake)
    try:
        yield worker, wake, tmp_path
    finally:
        worker.shutdown(timeout_s=5)


def test_a_wake_before_the_child_handles_the_signal_is_not_sent(
        child: tuple[ChildWorker, threading.Event, Path]) -> None:
    worker, wake, _ = child
    for _ in range(2):  # the second is taken only once the forwarder is done with the first
        wake.set()
        wait_until(lambda: not wake.is_set(), what="the wake taken by the forwarder")
    with pytest.raises(subprocess.TimeoutExpired):
        worker.proc.wait(timeout=0.3)  # still alive: SIGUSR1's default action would have ended it
    assert not worker._handles_wake(worker.proc.pid)


def test_each_stored_batch_wakes_the_child_once_it_listens(child: tuple[ChildWorker, threading.Event, Path]) -> None:
    worker, wake, folder = child
    (folder / "handle").write_text("now")
    wait_until(lambda: (folder / "ready").exists(), what="the child's handler")
    wait_until(lambda: worker._handles_wake(worker.proc.pid), what="SigCgt showing the handler")
    for sent in range(1, 4):
        wake.set()
        wait_until(lambda sent=sent: (folder / "wakes").exists() and int((folder / "wakes").read_text() or 0) >= sent,
                   what=f"wake {sent} reaching the child")
    assert worker.proc.poll() is None


# The worker's loop at its busiest: its main thread waits on and clears the event while wakes keep arriving.
_BUSY_WORKER = """
import os, signal, sys, threading
from growthengine.pipeline.child import WAKE_SIGNAL, listen_for_signals
event = threading.Event()
listen_for_signals(event, lambda: None)
stop = threading.Event()
def send():
    while not stop.is_set():
        os.kill(os.getpid(), WAKE_SIGNAL)
sender = threading.Thread(target=send, daemon=True)
sender.start()
woken = 0
for turn in range(300_000):
    event.clear()  # holds the event's lock for a few instructions: a wake's handler must never need it
    if turn % 1_000 == 0 and event.wait(0.01):
        woken += 1
stop.set()
print(woken)
"""


def test_wakes_arriving_while_the_worker_waits_and_clears_never_stall_it() -> None:
    done = subprocess.run([sys.executable, "-c", _BUSY_WORKER], capture_output=True, text=True,
                          timeout=30, check=True)
    assert int(done.stdout) > 0  # it was woken, and it finished


def test_a_wake_sets_the_event(tmp_path: Path) -> None:
    script = ("import os, threading\nfrom growthengine.pipeline.child import WAKE_SIGNAL, listen_for_signals\n"
              "event = threading.Event()\nlisten_for_signals(event, lambda: None)\nos.kill(os.getpid(), WAKE_SIGNAL)\n"
              "print(event.wait(30))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "True"


# A worker's loop told to stop again and again (SIGTERM from its parent's shutdown, from the parent's death, from an
# operator) while its main thread waits on and clears the event it is woken by: it must stop. When the stop
# handler itself set that event, a signal landing inside ``clear`` deadlocked the main thread on the event's lock,
# and the worker never stopped (seen once: a child worker left running, its stack ``Event.clear`` -> handler ->
# ``Event.set``). The window is a few instructions wide, so this loop does not reproduce that deadlock reliably:
# it holds the listener to stopping under a storm of stops; the handlers' taking no lock is by construction.
_STOPPED_WORKER = """
import os, signal, threading, time
from growthengine.pipeline.child import listen_for_signals
event = threading.Event()
stop = threading.Event()
listen_for_signals(event, stop.set)
busy = [False]
def send():
    while not busy[0]:
        time.sleep(0.001)
    while True:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.0002)
threading.Thread(target=send, daemon=True).start()
turns = 0
while not stop.is_set():
    event.clear()
    event.wait(0.001)
    turns += 1
    busy[0] = turns >= 200  # the stops begin once the loop is well under way
print(turns)
"""


def test_a_stop_signal_stops_the_worker_whatever_its_main_thread_holds() -> None:
    done = subprocess.run([sys.executable, "-c", _STOPPED_WORKER], capture_output=True, text=True, timeout=30,
                          check=True)
    assert int(done.stdout) >= 200  # it stopped under the signals, after the loop was under way
