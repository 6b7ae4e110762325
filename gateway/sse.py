"""A server-sent event response whose events are made in a task of their own.

Starlette cancels a response's scope when the client disconnects, and anyio's cancellation is level-triggered:
cleanup awaited inside a cancelled scope does not run. So the events (and the Triton stream behind them) are
produced in a plain asyncio task feeding a queue; when the client goes away (``http.disconnect``, or a failed
send), that task is cancelled, and the client's stream, whose ``finally`` sends Triton the cancel, unwinds in it.

An error before the first event answers with its own status and JSON body; one after it is sent as an
``error`` event, and the stream ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import ApiError

log = logging.getLogger("vlm_gateway")
_RUNNING: set[asyncio.Task[Any]] = set()  # producers still unwinding after their client left
_END = object()


def event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        self.events = events
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _produce(self, queue: asyncio.Queue[Any]) -> None:
        try:
            async for item in self.events:
                await queue.put(item)
        except ApiError as error:
            await queue.put(error)
        except Exception:  # never a traceback to the client
            log.exception("a stream failed")
            await queue.put(ApiError(500, "internal error in the gateway", code="internal_error"))
        finally:
            await self.events.aclose()  # type: ignore[attr-defined]
        await queue.put(_END)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=64)
        producer = asyncio.create_task(self._produce(queue))
        _RUNNING.add(producer)
        producer.add_done_callback(_RUNNING.discard)
        gone = asyncio.create_task(_disconnected(receive))
        started, next_item = False, None
        try:
            while True:
                next_item = asyncio.ensure_future(queue.get())
                await asyncio.wait({next_item, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not next_item.done():
                    next_item.cancel()
                    return  # the client left
                item = next_item.result()
                if item is _END:
                    break
                if isinstance(item, ApiError):
                    if not started:
                        await item.response()(scope, receive, send)
                        return
                    await send(
                        {"type": "http.response.body", "body": event(json.dumps(item.body())), "more_body": True}
                    )
                    break
                if not started:
                    await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                    started = True
                await send({"type": "http.response.body", "body": item, "more_body": True})
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return  # a send to a client that has gone (ASGI 2.4 servers raise it)
        finally:
            producer.cancel()  # plain calls: they work even inside a cancelled scope
            gone.cancel()
            if next_item is not None:
                next_item.cancel()
