"""A long Step Functions call (an activity poll) ends when nobody waits for its answer any more."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dirigent.api.bodies import Disconnected
from dirigent.api.stepfunctions import _unless_gone


class Call:
    """A long call that notes whether it was told to stop."""

    def __init__(self, answer: dict[str, Any] | None = None) -> None:
        self.answer = answer
        self.cancelled = False

    async def run(self) -> dict[str, Any]:
        try:
            if self.answer is not None:
                return self.answer
            await asyncio.sleep(60)
            return {}
        except asyncio.CancelledError:
            self.cancelled = True
            raise


def receive_disconnect_after(seconds: float | None) -> Any:
    async def receive() -> dict[str, Any]:
        if seconds is None:
            await asyncio.sleep(60)
        else:
            await asyncio.sleep(seconds)
        return {"type": "http.disconnect"}

    return receive


def test_the_answer_comes_back_while_the_client_waits() -> None:
    call = Call({"taskToken": "t"})

    async def main() -> dict[str, Any]:
        return await _unless_gone(call.run(), receive_disconnect_after(None))

    assert asyncio.run(main()) == {"taskToken": "t"}
    assert not call.cancelled


def test_a_client_that_leaves_stops_the_call() -> None:
    call = Call()

    async def main() -> None:
        await _unless_gone(call.run(), receive_disconnect_after(0.05))

    with pytest.raises(Disconnected):
        asyncio.run(main())
    assert call.cancelled


def test_a_request_cancelled_by_the_server_stops_the_call() -> None:
    call = Call()

    async def main() -> None:
        request = asyncio.ensure_future(_unless_gone(call.run(), receive_disconnect_after(None)))
        await asyncio.sleep(0.05)
        request.cancel()  # what uvicorn does when its graceful limit runs out
        with pytest.raises(asyncio.CancelledError):
            await request
        await asyncio.sleep(0.01)  # the call's task takes its cancellation
        # Checked here: leaving asyncio.run would cancel every task anyway.
        assert call.cancelled

    asyncio.run(main())
