"""A cap on request bodies enforced at the ASGI edge: before the body is read, before authentication.

A declared ``Content-Length`` over the cap is refused at once; a chunked body, or one longer than it
declared, is cut off as soon as it passes the cap. Either way the client gets 413 problem+json.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Multipart framing around an upload's bytes (boundaries, part headers, the form fields).
MULTIPART_SLACK = 64 * 1024


class BodyLimit:
    """Pure ASGI middleware refusing bodies with 413: file uploads (multipart) over ``max_upload_bytes``,
    any other body (job specs, predict rows) over ``max_other_bytes``."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_other_bytes: int) -> None:
        self.app, self.max_upload_bytes, self.max_other_bytes = app, max_upload_bytes, max_other_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data")
        max_bytes = self.max_upload_bytes if upload else self.max_other_bytes
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await _refuse(send, max_bytes)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    # An HTTPException: FastAPI's body parsing re-raises it as is (any other error it
                    # turns into a 400), and the app's handler answers 413 problem+json.
                    raise HTTPException(413, f"the request body exceeds {max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(send: Send, max_bytes: int) -> None:
    body = json.dumps(
        {
            "type": "https://tuneforge.dev/problems/payload_too_large",
            "title": "Payload too large",
            "status": 413,
            "detail": f"the request body exceeds {max_bytes} bytes",
            "code": "payload_too_large",
        }
    ).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
