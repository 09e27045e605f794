"""What a listener sends on is the same whichever version of the helpers writes it.

``heads.header_block`` (the forwarded header lines, rewritten, then a tail)
and ``heads.next_traceparent`` exist compiled and in pure Python. Both are
held here to the references they stand in for: the header lines to
:func:`dirigent.mesh.policy.headers.rewrite` on the latin-1 text, the
traceparent to :func:`dirigent.mesh.policy.trace.hop`, with the same draws
taken in the same order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence, Set

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dirigent.mesh import heads
from dirigent.mesh.policy import trace
from dirigent.mesh.policy.headers import HeaderOps, compile_ops, rewrite

Block = Callable[..., bytes]
NextTraceparent = Callable[[bytes | None, trace.Bits], tuple[bytes, bytes | None]]

BLOCKS = [pytest.param(heads.python_header_block, id="python")]
TRACEPARENTS = [pytest.param(heads.python_next_traceparent, id="python")]
if heads.COMPILED:
    BLOCKS.append(pytest.param(heads.header_block, id="compiled"))
    TRACEPARENTS.append(pytest.param(heads.next_traceparent, id="compiled"))

NAMES = ["host", "accept", "Accept", "x-mesh", "X-Mesh", "traceparent", "connection", "x-a", "é"]
HEADERS = st.lists(
    st.tuples(
        st.sampled_from(NAMES).map(lambda n: n.encode("latin-1")),
        st.sampled_from([b"", b"1", b"*/*", b"a, b", b"caf\xe9", b"x" * 40]),
    ),
    max_size=8,
)
OPS = st.builds(
    HeaderOps,
    set=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["v", "W x", "ü"]), max_size=3),
    add=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["1", "2"]), max_size=2),
    remove=st.frozensets(st.sampled_from(NAMES), max_size=2),
)
DROPPED = st.frozensets(st.sampled_from([n.encode("latin-1") for n in NAMES]), max_size=3)
TAILS = st.lists(
    st.sampled_from([b"traceparent: 00-1-2-01\r\n", b"\r\n", b"", b"body"]), max_size=3
)


def reference(
    headers: Sequence[tuple[bytes, bytes]], dropped: Set[bytes], ops: HeaderOps, tail: list[bytes]
) -> bytes:
    text = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers if n not in dropped]
    lines = b"".join(
        b"%s: %s\r\n" % (n.encode("latin-1"), v.encode("latin-1")) for n, v in rewrite(ops, text)
    )
    return lines + b"".join(tail)


@pytest.mark.parametrize("block", BLOCKS)
@given(headers=HEADERS, dropped=DROPPED, ops=OPS, tail=TAILS)
@settings(max_examples=800, deadline=None)
def test_the_header_block_is_the_rewrite_of_the_forwarded_headers(
    block: Block,
    headers: list[tuple[bytes, bytes]],
    dropped: frozenset[bytes],
    ops: HeaderOps,
    tail: list[bytes],
) -> None:
    assert block(headers, dropped, compile_ops(ops), *tail) == reference(
        headers, dropped, ops, tail
    )


@pytest.mark.parametrize("block", BLOCKS)
def test_a_set_only_rewrite_replaces_in_place_and_appends_what_is_missing(block: Block) -> None:
    ops = compile_ops(HeaderOps(set={"Accept": "json", "X-Mesh": "dirigent"}))
    headers = [(b"accept", b"*/*"), (b"host", b"p"), (b"user-agent", b"w"), (b"accept", b"xml")]
    assert block(headers, frozenset({b"host"}), ops, b"\r\n") == (
        b"Accept: json\r\nuser-agent: w\r\nX-Mesh: dirigent\r\n\r\n"
    )


@pytest.mark.parametrize("block", BLOCKS)
def test_the_input_headers_are_left_as_they_were(block: Block) -> None:
    headers = [(b"accept", b"*/*"), (b"x-a", b"1")]
    ops = compile_ops(HeaderOps(set={"accept": "json"}, remove=frozenset({"x-a"})))
    block(headers, frozenset(), ops)
    assert headers == [(b"accept", b"*/*"), (b"x-a", b"1")]


@pytest.mark.parametrize("block", BLOCKS)
def test_headers_that_are_not_bytes_are_refused(block: Block) -> None:
    with pytest.raises(TypeError):
        block([(b"accept", "text")], frozenset(), None)


INCOMING = st.one_of(
    st.none(),
    st.sampled_from(
        [
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-00",
            b" \t00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n",
            b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            b"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            b"00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ]
    ),
    st.binary(min_size=50, max_size=60),
    st.builds(
        b"-".join,
        st.lists(
            st.binary(min_size=1, max_size=33).map(lambda b: b.hex()[:32].encode()), max_size=5
        ),
    ),
)
#: draws a bits callable might give, besides Random's own: zero, too wide, negative
DRAWS = st.lists(
    st.sampled_from([0, 1, 2**64 - 1, 2**128 - 1, 2**64, 2**130, -5, True]), max_size=2
)


def scripted(draws: list[int], seed: int) -> trace.Bits:
    """Gives ``draws`` first, then a seeded Random's bits."""
    rng = random.Random(seed)
    pending = list(draws)

    def bits(size: int) -> int:
        return pending.pop(0) if pending else rng.getrandbits(size)

    return bits


@pytest.mark.parametrize("next_traceparent", TRACEPARENTS)
@given(incoming=INCOMING, draws=DRAWS, seed=st.integers(0, 2**32))
@settings(max_examples=800, deadline=None)
def test_the_traceparent_sent_on_is_the_hop_the_core_makes(
    next_traceparent: NextTraceparent, incoming: bytes | None, draws: list[int], seed: int
) -> None:
    expected_bits, bits = scripted(draws, seed), scripted(draws, seed)
    hop = trace.hop(incoming, expected_bits)
    assert next_traceparent(incoming, bits) == (hop.traceparent, hop.parent_id)
    # As many draws taken: what comes next is the same too.
    assert bits(64) == expected_bits(64)


@pytest.mark.parametrize("next_traceparent", TRACEPARENTS)
def test_the_same_draws_are_taken_in_the_same_order(next_traceparent: NextTraceparent) -> None:
    for incoming in (None, b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"):
        expected, got = random.Random(11), random.Random(11)
        trace.hop(incoming, expected.getrandbits)
        next_traceparent(incoming, got.getrandbits)
        assert got.getstate() == expected.getstate()
