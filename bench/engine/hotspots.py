"""Where Dirigent's time goes: py-spy's raw samples, sorted into a few costs.

py-spy (``record --idle --format raw``) samples every thread of the engine's
process at a fixed rate, waiting or not, and writes one line per distinct
stack: ``frame;frame;...;leaf COUNT``, each frame ``function (file:line)``.
Each sample is put in the first category its stack matches, leaf first, so
JSON encoding called by the workflow core counts as JSON and a statement run
for ``append_events`` counts as that statement. The source line a frame stands
at tells a ``COMMIT`` from a ``BEGIN`` and a wait for the store's lock from
work done under it.

Samples of threads that wait for work (the client threads, an idle pool or
worker loop), of start-up and of shutdown are left out; waits for the store's
lock are counted apart, as they say how much the single SQLite connection
serializes.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")

IDLE = "idle"
STARTUP = "startup"
SHUTDOWN = "shutdown"  # closing the store checkpoints the WAL: once per run, not per execution
LOCK_WAIT = "waiting for the store's lock"
LEFT_OUT = {IDLE, STARTUP, SHUTDOWN}


#: where the measured ``dirigent`` package lives (run.py points it at an exported commit)
source_root = [SRC]


@cache
def _source_line(file: str, line: int) -> str:
    if not file.startswith("dirigent/"):
        return ""
    path = source_root[0] / file
    try:
        return path.read_text().splitlines()[line - 1]
    except (OSError, IndexError):
        return ""


def _parse(frame: str) -> tuple[str, str, int]:
    match = _FRAME.match(frame)
    if match is None:
        return frame, "", 0
    return match["function"], match["file"], int(match["line"])


def _statement(frames: list[tuple[str, str, int]], below: int) -> str:
    """The store operation (``SqlTransaction.append_events``...) that ran a statement."""
    for function, file, _ in reversed(frames[:below]):
        if file == "dirigent/store/sql.py" and function.startswith("SqlTransaction."):
            name = function.removeprefix("SqlTransaction.")
            if name not in {"_run", "_many", "_one", "_all"}:
                return name
    return "other"


def _in_transaction_block(frames: list[tuple[str, str, int]]) -> bool:
    return any(
        file.endswith("store/postgres.py")
        and "connection.transaction()" in _source_line(file, line)
        for _, file, line in frames
    )


def categorize(stack: str) -> str:
    frames = [_parse(frame) for frame in stack.split(";") if frame]
    if not frames:
        return IDLE
    if any(function == "_find_and_load" for function, _, _ in frames):
        return STARTUP
    if any(function.endswith(("Store.close", "Engine.stop")) for function, _, _ in frames):
        return SHUTDOWN
    _, leaf_file, leaf_line = frames[-1]
    leaf_text = _source_line(leaf_file, leaf_line)
    if leaf_file.endswith("store/sqlite.py") and "self._lock" in leaf_text:
        return LOCK_WAIT
    if leaf_file in {"threading.py", "queue.py", "concurrent/futures/thread.py"}:
        return IDLE
    if leaf_file.endswith("engine/taskthreads.py") and "self._queue.get()" in leaf_text:
        return IDLE  # a task thread waiting on its SimpleQueue (a C call: no frame of its own)
    for position in range(len(frames) - 1, -1, -1):
        function, file, line = frames[position]
        text = _source_line(file, line)
        if file.endswith(("store/sqlite.py", "store/postgres.py")):
            if '"COMMIT"' in text or "transaction() as block" in text:
                return "COMMIT (fsync)"
            if '"BEGIN' in text:
                return "BEGIN IMMEDIATE"
            if function.endswith(("._run", "._run_many")):
                return f"SQL: {_statement(frames, position)}"
        if file.startswith("json/") or file.endswith("asl/jsontext.py"):
            return "JSON encode/decode"
        if file.startswith(("sqlite3/", "psycopg/")):
            statement = _statement(frames, position)
            if statement == "other" and _in_transaction_block(frames):
                return "COMMIT (fsync)"  # psycopg's transaction block ending: BEGIN/COMMIT
            return f"SQL: {statement}"
        if file == "dirigent/store/sql.py":
            return "store: rows to records"
        if file.startswith(("dirigent/workflow/", "dirigent/asl/")):
            return "workflow core (load, handle, snapshot)"
        if file == "dirigent/engine/codec.py":
            return "engine: signal/task codec"
        if file == "dirigent/engine/dispatch.py" or file.endswith("functions.py"):
            return "engine: running the task"
        if file.startswith("dirigent/engine/"):
            return "engine: shell (worker, transitions)"
        if file.endswith(("dirigent_side.py", "measure.py")):
            return "benchmark driver"
    return "other Python (threads, contextlib, dataclasses)"


def summarize(raw: str) -> tuple[Counter[str], int]:
    """Samples by category, and the total of busy samples (idle and startup left out)."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        counts[categorize(stack.strip())] += int(count)
    busy = sum(n for name, n in counts.items() if name not in {*LEFT_OUT, LOCK_WAIT})
    return counts, busy


def table(raw: str, rate: int, executions: int) -> list[tuple[str, float | None, float]]:
    """``(category, % of busy thread time, ms of thread time per execution)``; lock
    waits have no share, being no work."""
    counts, busy = summarize(raw)
    rows = []
    for name, n in counts.most_common():
        if name in LEFT_OUT:
            continue
        share = 100.0 * n / busy if name != LOCK_WAIT else None
        rows.append((name, share, 1000.0 * n / rate / executions))
    return rows
