"""The worker loop: claim due executions, advance them, run the tasks they ask for.

One iteration is one transaction: the results of tasks this node finished
since the last iteration are enqueued as signals, then every execution with a
due signal (up to a batch) is claimed and advanced. Many transitions share one
commit, so throughput does not stop at one fsync per transition, and a task's
result reaches its execution in the same transaction that advances it.

Tasks this node claimed run in a thread pool. If the node dies, their leases
expire and any node claims them again (delivery is at least once; the
idempotency key makes a repeat recognisable to the service).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dirigent.engine import codec
from dirigent.engine.dispatch import Resolver, run_task
from dirigent.engine.errors import ServiceError
from dirigent.engine.functions import FunctionRegistry
from dirigent.engine.taskthreads import TaskThreads
from dirigent.engine.transitions import LOCAL_KINDS, Context, Outcome, Writes, advance
from dirigent.store.port import Conflict, Store, StoreError, Transaction
from dirigent.store.records import ExecutionRecord, SignalRecord, TaskRecord
from dirigent.workflow.signals import Signal, TaskFailed

log = logging.getLogger("dirigent.engine")

#: the shortest idle wait between iterations that advanced nothing
MIN_WAIT = 0.005


@dataclass
class _Finished:
    """A task this node ran: its signals, and whether its row is done with."""

    task: TaskRecord
    signals: list[Signal]
    keep_waiting: bool

    @property
    def bodies(self) -> list[str]:
        """The signals as the queue keeps them: encoded only if they go there."""
        return [codec.encode_signal(signal) for signal in self.signals]


Settle = Callable[[Any, "BaseException | None"], None]


class _NameTaken(Exception):
    """A batch's deferred start found its execution's name taken (see Worker.run_once)."""


@dataclass(eq=False)
class _Request:
    """Work another thread asked to have done in the loop's next transaction."""

    run: Callable[[Transaction, Writes, Outcome], Any]
    #: told the answer or the error once the transaction ended; must not block
    settle: Settle
    answer: Any = None
    error: BaseException | None = None

    def finish(self) -> None:
        try:
            self.settle(self.answer, self.error)
        except Exception:  # the caller's callback: its failure is not the loop's
            log.exception("a request's callback failed")


@dataclass
class WorkerStats:
    transitions: int = 0
    commits: int = 0
    tasks_run: int = 0
    iterations: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    #: seconds the loop's thread spent in its iterations (transactions, and the
    #: waits for the GIL and the disk within them) and waiting for work, since
    #: start: difference two readings for a period. Transitions committed on task
    #: threads (a sequential workflow when the loop is idle) are not in them.
    busy_seconds: float = 0.0
    idle_seconds: float = 0.0

    @property
    def utilization(self) -> float:
        """The share of the loop's time spent working, 0 to 1 (0 before it ran)."""
        total = self.busy_seconds + self.idle_seconds
        return self.busy_seconds / total if total > 0 else 0.0


class Worker:
    def __init__(
        self,
        store: Store,
        context: Context,
        functions: FunctionRegistry,
        resolve: Resolver,
        clock: Callable[[], float],
        *,
        batch: int = 128,
        pool_size: int = 8,
        idle_poll: float = 0.25,
        monotonic: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.store = store
        self.context = context
        self.functions = functions
        self.resolve = resolve
        self.clock = clock
        #: for durations only (the loop's busy and idle time): never steps back
        self.monotonic = monotonic
        self.batch = batch
        self.idle_poll = idle_poll
        self.stats = WorkerStats()
        self._pool: TaskThreads[TaskRecord] = TaskThreads(
            self._run, size=pool_size, name="dirigent-task"
        )
        self._finished: list[_Finished] = []
        self._finished_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._reclaim_at = 0.0
        self._submitted = 0
        #: set after an iteration failed on one execution: advance them one by one
        self._isolate = False
        #: tokens of the tasks this node is running: their leases are renewed
        self._in_flight: set[str] = set()
        self._renew_at = 0.0
        #: transactions being written by this worker's threads right now
        self._writers = 0
        self._tasks_done = 0
        #: writes other threads asked to commit with the loop's next transaction
        self._requests: list[_Request] = []
        #: whether the signal queue may hold work the loop has not seen: set by
        #: whoever enqueues signals; the loop reads the queue when it is set,
        #: when the earliest known signal falls due, and every idle_poll anyway
        #: (other nodes' signals), rather than twice in every transaction
        self._scan = True
        self._scan_at = 0.0
        self._known_due: float | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dirigent-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        # Tasks not started yet stay leased to this node: whoever claims them
        # after the lease runs them. This node no longer counts them as its own.
        self._forget(self._pool.shutdown())
        # Results that finished while the loop wound down are committed now, so
        # their tasks (and side effects) are not run again after a restart.
        with self._finished_lock:
            parked = bool(self._finished) or bool(self._requests)
        if parked:
            try:
                self.run_once()
            except Exception:
                log.exception("could not commit the last results; their tasks will run again")

    @property
    def running(self) -> bool:
        """Whether the loop's thread is there to take requests (see :meth:`commit_in_loop`)."""
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def commit_in_loop(self, run: Callable[[Transaction, Writes, Outcome], Any]) -> Any:
        """Run ``run`` inside the loop's next transaction; its answer once committed.

        Every writer on one node then shares the loop's transactions: requests
        arriving from many threads (StartExecution from the API's threads) and
        the results of finished tasks commit together, one fsync for all, and
        never queue one by one for the store's lock. ``run`` gathers its rows
        into the Writes and its local tasks into the Outcome it is given. A
        :class:`ServiceError` is its caller's alone and must come before it
        writes anything; any other failure rolls back the whole transaction and
        is every request's in it. If the loop has stopped, the caller's thread
        runs the transaction itself.
        """
        done = threading.Event()
        request = _Request(run, lambda _answer, _error: done.set())
        if not self._queue(request):
            self._run_requests_here([request])
        done.wait()
        if request.error is not None:
            raise request.error
        return request.answer

    def commit_in_loop_then(self, run: Callable[[Transaction, Writes, Outcome], Any],
                            settle: Settle) -> bool:  # fmt: skip
        """:meth:`commit_in_loop` without waiting: ``settle(answer, error)`` is
        called on the loop's thread once the transaction ended. ``False`` (and
        nothing done) if the loop is not running."""
        return self._queue(_Request(run, settle))

    def _queue(self, request: _Request) -> bool:
        with self._finished_lock:
            if not self.running:
                return False
            self._requests.append(request)
        self._wake.set()
        return True

    def _run_requests_here(self, requests: list[_Request]) -> None:
        outcome = Outcome()
        try:
            with self.store.transaction() as tx:
                writes = Writes()
                self._answer(tx, requests, outcome, writes)
                writes.flush(tx)
        except BaseException as exc:
            for request in requests:
                request.error, request.answer = exc, None
        else:
            self._submit(outcome.local_tasks)
            if outcome.touched or outcome.timers:
                self.wake()
        for request in requests:
            request.finish()

    @staticmethod
    def _answer(
        tx: Transaction, requests: list[_Request], outcome: Outcome, writes: Writes
    ) -> None:
        """Run the requests; their rows wait in ``writes`` for the caller to flush."""
        for request in requests:
            # A request run again (its batch went again) starts afresh.
            request.answer, request.error = None, None
            try:
                request.answer = request.run(tx, writes, outcome)
            except ServiceError as exc:
                request.error = exc

    def wake(self) -> None:
        """Look at the signal queue soon: something was enqueued."""
        self._scan = True
        self._wake.set()

    def accept(self, outcome: Outcome) -> None:
        """Take over what a transition committed outside the loop asked for."""
        self._submit(outcome.local_tasks)
        self.wake()

    def _submit(self, tasks: list[TaskRecord]) -> None:
        with self._finished_lock:
            self._submitted += len(tasks)
            self._in_flight.update(t.token for t in tasks)
        self._hand_over(tasks)

    def _hand_over(self, tasks: list[TaskRecord]) -> None:
        """To the task threads; those refused (the worker is stopping) are forgotten."""
        refused = [task for task in tasks if not self._pool.submit(task)]
        if refused:
            self._forget(refused)

    def _forget(self, tasks: list[TaskRecord]) -> None:
        """Tasks counted as submitted that will not run here: their leases run
        out and whoever claims them then runs them."""
        if not tasks:
            return
        with self._finished_lock:
            self._submitted -= len(tasks)
            self._in_flight.difference_update(task.token for task in tasks)

    def pending_results(self) -> bool:
        with self._finished_lock:
            return bool(self._finished) or self._tasks_done < self._submitted

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        while not self._stopping.is_set():
            began = self.monotonic()
            try:
                advanced, next_due = self.run_once()
            except Exception:  # keep serving: the transaction rolled back, nothing is lost
                self.stats.busy_seconds += self.monotonic() - began
                log.exception("worker iteration failed; retrying")
                time.sleep(0.1)  # neither busy nor waiting for work: not counted
                continue
            self.stats.busy_seconds += self.monotonic() - began
            if advanced:
                continue
            with self._finished_lock:
                pending = bool(self._finished) or bool(self._requests)
            if pending:
                continue
            timeout = self.idle_poll
            if next_due is not None:
                # A signal already due that this node could not claim belongs to an
                # execution another node holds: wait a little rather than spin.
                timeout = max(MIN_WAIT, min(timeout, next_due - self.clock()))
            waited_from = self.monotonic()
            self._wake.wait(timeout)
            self._wake.clear()
            self.stats.idle_seconds += self.monotonic() - waited_from

    def run_once(self) -> tuple[int, float | None]:
        """One transaction's worth of work: ``(executions advanced, next due time)``."""
        if self._isolate:
            return self._run_isolated(), None
        now = self.clock()
        with self._finished_lock:
            if not self._finished and not self._requests and not self._due(now):
                # Nothing to write and nothing to read: no transaction at all
                # (an empty one still takes the store's lock, and on the way
                # back from every wake-up there would be one).
                return 0, self._known_due
            finished, self._finished = self._finished, []
            requests, self._requests = self._requests, []
            self._in_flight.difference_update(f.task.token for f in finished)
            self._writers += 1
        try:
            try:
                # New executions' rows go in the batch's flush, one statement for all.
                outcome, next_due = self._commit(finished, requests, now, defer_starts=True)
            except _NameTaken:
                # A start's name was taken (a repeated StartExecution, as AWS
                # allows): that start alone must answer, with the execution or an
                # error. The batch goes again at once, each start inserting its row.
                self._scan = True
                outcome, next_due = self._commit(finished, requests, now, defer_starts=False)
        except BaseException as exc:
            self._fail(finished, requests, exc)
            raise
        finally:
            with self._finished_lock:
                self._writers -= 1
        for request in requests:
            request.finish()
        with self._finished_lock:  # task threads count their commits too
            self.stats.iterations += 1
            self.stats.transitions += outcome.advanced
            if outcome.advanced or finished:
                self.stats.commits += 1
        self._submit(outcome.local_tasks)
        return outcome.advanced + len(requests), next_due

    def _commit(
        self,
        finished: list[_Finished],
        requests: list[_Request],
        now: float,
        *,
        defer_starts: bool,
    ) -> tuple[Outcome, float | None]:
        """One transaction for an iteration: what it left to do, and the next due time.

        With ``defer_starts``, a Conflict while starts' rows were deferred is
        :class:`_NameTaken` (the transaction rolled back)."""
        outcome = Outcome()
        writes = Writes(defer_starts=defer_starts)
        deferred = False
        try:
            with self.store.transaction() as tx:
                # The starts' rows and the results' go in one flush: a start only
                # writes rows of its own new execution, which the results' reads
                # (claims and due signals of executions with finished tasks) never
                # touch; the flush comes before the queue is read below.
                if requests:
                    self._answer(tx, requests, outcome, writes)
                    deferred = bool(writes.started)
                self._deliver(tx, finished, now, outcome, writes)
                writes.flush(tx)
                if now >= self._reclaim_at:
                    # Tasks whose lease ran out (their node died) are run again here.
                    outcome.local_tasks.extend(
                        tx.claim_tasks(
                            LOCAL_KINDS,
                            now,
                            now + self.context.lease_seconds,
                            self.context.worker,
                            self.batch,
                        )
                    )
                    self._reclaim_at = now + 1.0
                if now >= self._renew_at:
                    self._renew_leases(tx, now)
                if outcome.touched or outcome.timers:
                    self._scan = True
                if self._queue_due(now):
                    # Cleared before reading: whoever enqueues after this read
                    # sets it again, and the next iteration looks.
                    self._scan = False
                    records = tx.claim_executions(now, self.batch)
                    if records:
                        self._advance_all(tx, records, now, outcome, Writes())
                    # Whatever is still due, or falls due later (timers these
                    # transitions set included), shows in the earliest due time.
                    self._known_due = tx.next_due()
                    self._scan_at = now + self.idle_poll
                next_due = self._known_due
        except Conflict as exc:
            if deferred:
                raise _NameTaken from exc
            raise
        return outcome, next_due

    def _fail(
        self, finished: list[_Finished], requests: list[_Request], exc: BaseException
    ) -> None:
        """A transaction failed: the results wait for the next, the requests are told."""
        self._scan = True  # what this transaction read of the queue did not happen
        with self._finished_lock:
            self._finished = finished + self._finished
        for request in requests:
            request.error, request.answer = exc, None
            request.finish()

    def _due(self, now: float) -> bool:
        """Whether the store has anything for this node to look at by ``now``."""
        return self._queue_due(now) or now >= self._reclaim_at or now >= self._renew_at

    def _queue_due(self, now: float) -> bool:
        """Whether the signal queue is to be read now (see ``_scan``)."""
        return (
            self._scan
            or now >= self._scan_at
            or (self._known_due is not None and now >= self._known_due)
        )

    def _deliver(
        self,
        tx: Transaction,
        finished: list[_Finished],
        now: float,
        outcome: Outcome,
        writes: Writes,
    ) -> None:
        """Hand finished tasks' results to their executions, advancing each once.

        Straight into the transition when this node can lock the execution, so a
        result does not go through the signal queue (an insert, a read and a
        delete); queued for whoever holds it otherwise.
        """
        by_execution: dict[str, list[_Finished]] = {}
        for item in finished:
            by_execution.setdefault(item.task.execution_arn, []).append(item)
        if not by_execution:
            return
        claimed: list[ExecutionRecord] = []
        results: dict[str, list[Signal]] = {}
        for record in tx.claim_executions_named(list(by_execution)):
            if record.status == "RUNNING":
                claimed.append(record)
                items = by_execution.pop(record.arn)
                _apply_finished(writes, items, now, enqueue=False)
                results[record.arn] = [signal for item in items for signal in item.signals]
        for items in by_execution.values():
            # Held by another node, or over: the results wait in the queue.
            _apply_finished(writes, items, now)
            self._scan = True
        self._advance_all(tx, claimed, now, outcome, writes, results=results)

    def _advance_all(
        self,
        tx: Transaction,
        records: list[ExecutionRecord],
        now: float,
        outcome: Outcome,
        writes: Writes,
        *,
        results: dict[str, list[Signal]] | None = None,
    ) -> None:
        """Advance claimed executions, their due signals read and their rows
        written one statement per kind for the whole batch (with what ``writes``
        holds already)."""
        due: dict[str, list[SignalRecord]] = {}
        if records:
            for signal in tx.due_signals_of([record.arn for record in records], now):
                due.setdefault(signal.execution_arn, []).append(signal)
        for record in records:
            try:
                advance(tx, record, now, self.context, outcome,
                        extra=(results or {}).get(record.arn, ()), due=due.get(record.arn, []),
                        writes=writes)  # fmt: skip
            except StoreError:
                raise
            except Exception:
                # Not the store's fault: one execution cannot be advanced. Next
                # time each goes in a transaction of its own, so the one at fault
                # is found and the others are not held up.
                self._isolate = True
                raise
        # Before the transaction reads the queue again: consumed signals go now.
        writes.flush(tx)

    def _run_isolated(self) -> int:
        self._isolate = False
        now = self.clock()
        with self.store.transaction() as tx:
            arns = [record.arn for record in tx.claim_executions(now, self.batch)]
        advanced = 0
        for arn in arns:
            outcome = Outcome()
            try:
                with self.store.transaction() as tx:
                    record = tx.claim_execution(arn)
                    if record is not None:
                        advance(tx, record, now, self.context, outcome)
            except StoreError:
                raise
            except Exception as exc:
                log.exception("execution %s cannot be advanced; it fails", arn)
                self._quarantine(arn, exc, now)
                continue
            advanced += outcome.advanced
            self._submit(outcome.local_tasks)
        return advanced

    def _quarantine(self, arn: str, exc: Exception, now: float) -> None:
        """Fail an execution the engine cannot advance, rather than retry it forever."""
        with self.store.transaction() as tx:
            record = tx.claim_execution(arn)
            if record is None or record.status != "RUNNING":
                return
            tx.delete_signals([s.id for s in tx.due_signals(arn, float("inf"))])
            tx.update_execution(
                replace(
                    record,
                    status="FAILED",
                    error="States.Runtime",
                    cause=f"Dirigent could not advance this execution: {exc!r}",
                    stopped_at=now,
                )
            )

    def _renew_leases(self, tx: Transaction, now: float) -> None:
        """Keep this node's running tasks leased, so a long task is not taken for dead."""
        with self._finished_lock:
            running = list(self._in_flight)
        for token in running:
            tx.set_task_status(token, "running", now + self.context.lease_seconds,
                               self.context.worker)  # fmt: skip
        # A third of the lease: two renewals can be missed before anyone reclaims.
        self._renew_at = now + self.context.lease_seconds / 3

    def _run(self, task: TaskRecord) -> None:
        """Run a task, then carry its execution on from this thread while it can.

        The result and the execution's next transition commit together right
        here; if that transition asks for another local task, this thread runs
        it at once. A sequential workflow thus costs one commit per step and no
        hand-offs between threads. Whatever cannot continue here (the execution
        is locked by another node, the commit failed) goes back to the loop.
        """
        next_task: TaskRecord | None = task
        while next_task is not None:
            finished = self._execute(next_task)
            next_task = self._continue(finished)
            if next_task is not None and self._stopping.is_set():
                # Stopping: the next task stays leased to this node and is run
                # again by whoever claims it, rather than holding the stop up.
                self._forget([next_task])
                next_task = None

    def _execute(self, task: TaskRecord) -> _Finished:
        command = codec.decode_task(task.command)
        try:
            signals = run_task(command, self.functions, self.resolve, task.execution_arn)
        except BaseException as exc:  # a bug in a runner must not lose the task
            log.exception("task %s failed to run", task.token)
            signals = [TaskFailed(command.token, "States.Runtime", f"task runner failed: {exc}")]
        return _Finished(
            task=task,
            signals=signals,
            keep_waiting=command.wait_for_token and len(signals) <= 1,
        )

    def _continue(self, finished: _Finished) -> TaskRecord | None:
        with self._finished_lock:
            self._in_flight.discard(finished.task.token)
            if self._writers:
                # Someone is committing: rather than queue for the store one by
                # one (a commit, and an fsync, each), join the loop's next batch,
                # which carries every result waiting by then in one transaction.
                self._finished.append(finished)
                self._tasks_done += 1
                self._wake.set()
                return None
            self._writers += 1
        try:
            return self._commit_here(finished)
        finally:
            with self._finished_lock:
                self._writers -= 1

    def _commit_here(self, finished: _Finished) -> TaskRecord | None:
        now = self.clock()
        outcome = Outcome()
        try:
            with self.store.transaction() as tx:
                record = tx.claim_execution(finished.task.execution_arn)
                writes = Writes()
                if record is not None and record.status == "RUNNING":
                    # The result goes straight into the transition, not through the
                    # queue, and the task's row goes in the same flush as its rows.
                    _apply_finished(writes, [finished], now, enqueue=False)
                    advance(tx, record, now, self.context, outcome,
                            extra=finished.signals, writes=writes)  # fmt: skip
                else:
                    _apply_finished(writes, [finished], now)
                writes.flush(tx)
        except Exception:
            log.exception("could not commit the result of task %s here", finished.task.token)
            with self._finished_lock:
                self._finished.append(finished)
                self._tasks_done += 1
            self._wake.set()
            return None
        following, rest = outcome.local_tasks[:1], outcome.local_tasks[1:]
        with self._finished_lock:
            # In one block: never a moment when this task is done and its
            # successors are not yet counted (run_until_idle would stop early).
            self._tasks_done += 1
            self._submitted += len(outcome.local_tasks)
            self._in_flight.update(t.token for t in outcome.local_tasks)
            self.stats.tasks_run += 1
            self.stats.transitions += outcome.advanced
            self.stats.commits += 1
        self._hand_over(rest)
        if outcome.touched or outcome.timers or record is None:
            self.wake()
        elif rest:
            self._wake.set()
        return following[0] if following else None


def _apply_finished(
    writes: Writes, finished: list[_Finished], now: float, *, enqueue: bool = True
) -> None:
    """Record what finished tasks produced: their rows' new state and (unless the
    caller feeds them to the transition itself) their signals."""
    for item in finished:
        if item.keep_waiting:
            # .waitForTaskToken: the row stays, waiting for the token to come back.
            writes.tasks_waiting.append(item.task.token)
        else:
            writes.done.append(item.task.token)
    if enqueue:
        writes.signals.extend(
            (f.task.execution_arn, now, body) for f in finished for body in f.bodies
        )
