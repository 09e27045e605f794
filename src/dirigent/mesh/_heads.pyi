from collections.abc import Sequence, Set

from dirigent.mesh.heads import Request, RequestScan, ResponseScan
from dirigent.mesh.policy.headers import ByteOps
from dirigent.mesh.policy.trace import Bits

def scan_request(data: bytes, /) -> RequestScan | None: ...
def read_request(data: bytes, max_body: int, request: type[Request], /) -> Request | None: ...
def scan_response(data: bytes, /) -> ResponseScan | None: ...
def header_block(
    headers: Sequence[tuple[bytes, bytes]],
    dropped: Set[bytes],
    ops: ByteOps | None,
    /,
    *tail: bytes,
) -> bytes: ...
def next_traceparent(incoming: bytes | None, bits: Bits, /) -> tuple[bytes, bytes | None]: ...
