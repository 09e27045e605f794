"""Parallel and Map: starting children, collecting their results, failing together.

A fanout runs its children as threads of the same execution (inline Map and
Parallel) or as silent threads whose events belong to child executions
(distributed Map). Children start depth-first, at most ``MaxConcurrency`` at
once; a failure beyond the tolerated threshold aborts the running siblings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dirigent.asl import failure
from dirigent.asl.model import Json, MapState, ParallelState
from dirigent.workflow import dataflow, states
from dirigent.workflow.base import ExecutionBase, thread_state
from dirigent.workflow.dataflow import Frame
from dirigent.workflow.signals import CancelTask
from dirigent.workflow.threads import Fanout, Thread, child_key


class FanoutSteps(ExecutionBase):
    """The Parallel and Map transitions of :class:`~dirigent.workflow.execution.Execution`."""

    if TYPE_CHECKING:
        # Defined by Execution, which completes and fails states for every type.
        def _complete(self, thread: Thread, frame: Frame, result: Json) -> None: ...

        def _fail_state(self, thread: Thread, error: str | None, cause: str | None) -> None: ...

    def _map_run_arn(self, thread: Thread) -> str:
        arn = self.info.execution_arn.replace(":execution:", ":mapRun:", 1)
        return f"{arn}/{thread.state_name}:{thread.entered_event}"

    def _start_parallel(self, thread: Thread, state: ParallelState, frame: Frame) -> None:
        branch_input = dataflow.arguments(frame, thread.effective)
        self._emit_on(thread, "ParallelStateStarted", {})
        count = len(state.branches)
        thread.fanout = Fanout(
            items=[branch_input] * count, results=[None] * count, limit=count, is_map=False
        )
        self._launch_children(thread)

    def _start_map(self, thread: Thread, state: MapState, frame: Frame) -> None:
        items = states.map_items(state, frame, thread.effective)
        concurrency = states.map_concurrency(state, frame, thread.effective)
        # AWS reports the Map as started before it reads its failure tolerance,
        # so a bad ToleratedFailureCountPath fails a started Map.
        self._emit_on(thread, "MapStateStarted", {"length": len(items)})
        plan = states.map_plan(state, frame, thread.effective, items, concurrency)
        if state.mode == "DISTRIBUTED":
            self._emit_on(thread, "MapRunStarted", {"mapRunArn": self._map_run_arn(thread)})
        thread.fanout = Fanout(
            items=plan.items,
            results=[None] * len(plan.items),
            limit=plan.max_concurrency or len(plan.items) or 1,
            tolerated_count=plan.tolerated_count,
            tolerated_percentage=plan.tolerated_percentage,
            distributed=state.mode == "DISTRIBUTED",
        )
        if not plan.items:
            thread.phase = "fanout-done"
            self._ready.appendleft(thread.id)
            return
        self._launch_children(thread)

    def _launch_children(self, parent: Thread) -> None:
        fan = parent.fanout
        assert fan is not None
        state = thread_state(parent)
        launched: list[int] = []
        while fan.started < len(fan.items) and len(fan.running) < fan.limit:
            index = fan.started
            fan.started += 1
            if isinstance(state, ParallelState):
                child = self._new_thread(
                    child_key(parent, state.name, index), parent.variables, parent=parent.id
                )
                child.raw_input = fan.items[index]
            else:
                assert isinstance(state, MapState)
                child = self._new_thread(
                    child_key(parent, state.name, None), parent.variables, parent=parent.id
                )
                frame = self._frame(parent)
                child.raw_input = states.map_item_input(
                    state, frame, parent.effective, index, fan.items[index]
                )
                child.map_item = None
            child.silent = parent.silent or fan.distributed
            child.child_index = index
            child.state_name = child.machine.start_at
            child.prev_event = parent.prev_event
            fan.running.add(child.id)
            child.phase = "enter"
            if isinstance(state, MapState) and not fan.distributed:
                started = self._emit_on(
                    parent, "MapIterationStarted", {"name": state.name, "index": index}
                )
                child.prev_event = started.id
            launched.append(child.id)
        # Depth-first: the new children run before anything else queued.
        self._ready.extendleft(reversed(launched))

    def _child_finished(self, child: Thread, ok: bool, value: Json, err: tuple[Any, Any]) -> None:
        parent = self._threads[child.parent] if child.parent is not None else None
        assert parent is not None
        assert parent.fanout is not None
        fan = parent.fanout
        fan.running.discard(child.id)
        fan.finished += 1
        state = thread_state(parent)
        if isinstance(state, MapState) and not fan.distributed:
            kind = "MapIterationSucceeded" if ok else "MapIterationFailed"
            self._emit_on(parent, kind, {"name": state.name, "index": child.child_index})
        if ok:
            fan.results[child.child_index] = value
        else:
            fan.failed += 1
            if not self._tolerated(fan):
                self._abort_children(parent)
                parent.fanout = None
                if fan.distributed:
                    self._emit_on(parent, "MapRunFailed", {})
                parent.fanout_failed = True
                if _has_threshold(fan) or fan.distributed:
                    # A Map Run's failure tolerance (zero unless set) was exceeded.
                    err = (failure.EXCEED_TOLERATED_FAILURE, _THRESHOLD_EXCEEDED)
                self._fail_state(parent, err[0], err[1])
                return
            fan.results[child.child_index] = {"Error": err[0], "Cause": err[1]}
        if fan.finished == len(fan.items):
            parent.phase = "fanout-done"
            self._ready.appendleft(parent.id)
        else:
            self._launch_children(parent)

    def _tolerated(self, fan: Fanout) -> bool:
        # With both thresholds set, the Map fails as soon as either is exceeded.
        if not fan.is_map or not _has_threshold(fan):
            return False
        if fan.tolerated_count is not None and fan.failed > fan.tolerated_count:
            return False
        if fan.tolerated_percentage is not None and fan.items:
            return fan.failed * 100.0 / len(fan.items) <= fan.tolerated_percentage
        return True

    def _abort_children(self, parent: Thread) -> None:
        fan = parent.fanout
        if fan is None:
            return
        for child_id in list(fan.running):
            child = self._threads.get(child_id)
            if child is not None:
                self._abort_thread(child)
        fan.running.clear()

    def _abort_thread(self, thread: Thread) -> None:
        if not thread.done and thread.entered_event:
            state = thread_state(thread)
            self._emit_on(thread, f"{state.type}StateAborted", {"name": state.name})
        self._retire(thread)
        if thread.token is not None:
            self._tokens.pop(thread.token, None)
            self._commands.append(CancelTask(thread.token))
            thread.token = None
        self._cancel_thread_timers(thread)
        if thread.fanout is not None:
            self._abort_children(thread)

    def _finish_fanout(self, thread: Thread) -> None:
        fan = thread.fanout
        assert fan is not None
        thread.fanout = None
        state = thread_state(thread)
        # AWS records MapStateSucceeded but no ParallelStateSucceeded.
        if isinstance(state, MapState):
            if fan.distributed:
                self._emit_on(thread, "MapRunSucceeded", {})
            self._emit_on(thread, "MapStateSucceeded", {})
        frame = self._frame(thread)
        result = dataflow.select_result(frame, fan.results)
        self._complete(thread, frame, result)


_THRESHOLD_EXCEEDED = "The specified tolerated failure threshold was exceeded"


def _has_threshold(fan: Fanout) -> bool:
    return fan.tolerated_count is not None or fan.tolerated_percentage is not None
