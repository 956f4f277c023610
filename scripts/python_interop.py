#!/usr/bin/env python3
"""Interop tests: the Python `websockets` client against the echo example.

Run through `scripts/python-interop.sh`, which starts three servers:

    echo --bind 127.0.0.1:0 --protocol chat --allowed-origin https://somewhere.else
    echo --bind 127.0.0.1:0 --compression
    echo --bind 127.0.0.1:0 --compression --server-no-context-takeover --max-message-size 1048576

and passes their URLs and log files here:

    python_interop.py --url ws://127.0.0.1:PORT/ws --server-log PATH \
        --deflate-url ws://127.0.0.1:PORT2/ws --deflate-log PATH2 \
        --no-takeover-url ws://127.0.0.1:PORT3/ws --no-takeover-log PATH3

The first server has compression off (the default), the other two negotiate permessage-deflate
(RFC 7692), which websockets offers by default. Prints one line per test and a final
`N passed, M failed`; exits 1 when a test failed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
from websockets.frames import CTRL_OPCODES, Frame

MIB = 1024 * 1024
# The no-context-takeover server's --max-message-size.
NO_TAKEOVER_MAX_MESSAGE_SIZE = MIB
ALLOWED_ORIGIN = "https://somewhere.else"
REFUSED_ORIGIN = "https://evil.example"

TESTS: list[tuple[str, Callable[[argparse.Namespace], Awaitable[None]]]] = []


def test(function: Callable[[argparse.Namespace], Awaitable[None]]):
    """Registers a test, named by its docstring."""
    TESTS.append((function.__doc__ or function.__name__, function))
    return function


def open_socket(args: argparse.Namespace, url: str | None = None, **kwargs) -> connect:
    """A client for `url`, by default the plain server's (`--url`)."""
    # No proxy: the server is on the loopback. Room for the 1 MiB echoes.
    kwargs.setdefault("max_size", 16 * MIB)
    return connect(url or args.url, proxy=None, open_timeout=10, close_timeout=10, **kwargs)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def round_trip(ws: ClientConnection, message: str | bytes) -> None:
    await ws.send(message)
    echoed = await asyncio.wait_for(ws.recv(), timeout=10)
    check(type(echoed) is type(message), f"sent {type(message).__name__}, got {type(echoed).__name__}")
    check(echoed == message, f"echo differs: sent {len(message)} long, got {len(echoed)}")


# --- permessage-deflate helpers ------------------------------------------------------------

# A log line's `name=value` fields; a value is a word or a quoted string.
LOG_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


async def server_log_fields(log_path: str, message: str, client_port: int) -> dict[str, str]:
    """The fields of the server's `message` line for the client on `client_port`, waiting up to 10 s."""
    peer = f"peer=127.0.0.1:{client_port}"
    deadline = time.monotonic() + 10
    while True:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if f": {message} " in line and re.search(rf"{re.escape(peer)}\b", line):
                    return dict(LOG_FIELD.findall(line.split(f": {message} ", 1)[1]))
        check(time.monotonic() < deadline, f"no server log line `{message}` for {peer}")
        await asyncio.sleep(0.05)


def extension_header(ws: ClientConnection) -> str | None:
    """The server's `Sec-WebSocket-Extensions` answer, its lines joined; None without one."""
    lines = ws.response.headers.get_all("Sec-WebSocket-Extensions")
    return ", ".join(lines) if lines else None


def answer_params(ws: ClientConnection) -> dict[str, str | None]:
    """The parameters of the server's permessage-deflate answer (a flag maps to None)."""
    header = extension_header(ws)
    check(header is not None, "the server answered no Sec-WebSocket-Extensions")
    name, *params = [part.strip() for part in header.split(";")]
    check(name == "permessage-deflate", f"the server answered {header!r}")
    check("," not in header, f"the server answered more than one extension: {header!r}")
    return {
        key.strip(): (value.strip() if sep else None)
        for key, sep, value in (param.partition("=") for param in params)
    }


def deflate_extension(ws: ClientConnection) -> PerMessageDeflate:
    extensions = ws.protocol.extensions
    check(
        len(extensions) == 1 and isinstance(extensions[0], PerMessageDeflate),
        f"negotiated extensions {extensions!r}, expected permessage-deflate alone",
    )
    return extensions[0]


class WireFrames:
    """Records the data frames websockets' permessage-deflate sees: RSV1 and the size on the wire.

    It wraps the extension's `encode` (our frames, after compression) and `decode` (the
    server's frames, before inflation).
    """

    def __init__(self, ws: ClientConnection):
        extension = deflate_extension(ws)
        self.sent: list[Frame] = []
        self.received: list[Frame] = []
        encode, decode = extension.encode, extension.decode

        def recording_encode(frame: Frame) -> Frame:
            encoded = encode(frame)
            if encoded.opcode not in CTRL_OPCODES:
                self.sent.append(encoded)
            return encoded

        def recording_decode(frame: Frame, *, max_size: int | None = None) -> Frame:
            if frame.opcode not in CTRL_OPCODES:
                self.received.append(frame)
            return decode(frame, max_size=max_size)

        extension.encode = recording_encode
        extension.decode = recording_decode

    def take_message(self, frames: list[Frame]) -> list[Frame]:
        """The frames of the oldest recorded message, removed from `frames`."""
        end = next((i for i, frame in enumerate(frames) if frame.fin), None)
        check(end is not None, "no whole message recorded")
        message, frames[: end + 1] = frames[: end + 1], []
        return message

    def compressed_echo(self) -> int:
        """Checks that the oldest echo came compressed (RSV1 on its first frame only, as RFC 7692
        §6.1 says) and returns its size on the wire."""
        frames = self.take_message(self.received)
        check(frames[0].rsv1, f"the echo ({frames[0].opcode.name}) came uncompressed: RSV1 not set")
        check(not any(frame.rsv1 for frame in frames[1:]), "RSV1 set on a continuation frame")
        return sum(len(frame.data) for frame in frames)


async def compressed_round_trip(ws: ClientConnection, wire: WireFrames, message: str | bytes) -> int:
    """Round-trips `message`, checks that both ways were compressed; the echo's size on the wire."""
    await round_trip(ws, message)
    sent = wire.take_message(wire.sent)
    check(sent[0].rsv1, "websockets sent the message uncompressed")
    return wire.compressed_echo()


def chat_json(size: int) -> str:
    """About `size` characters of JSON chat messages, as a dashboard or chat would send."""
    entries = []
    length = 2
    i = 0
    while length < size:
        entry = json.dumps(
            {"id": i, "user": f"user{i % 37}", "room": "general", "text": f"message number {i}", "ts": 1700000000 + i}
        )
        entries.append(entry)
        length += len(entry) + 2
        i += 1
    return "[" + ", ".join(entries) + "]"


def random_text(size: int) -> str:
    """`size` characters that do not repeat (base64 of random bytes)."""
    return base64.b64encode(os.urandom(size)).decode()[:size]


SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"


def breaks_an_8_bit_window(messages: list[bytes]) -> bool:
    """Whether `messages`, compressed with a 15-bit window (context takeover on), fail to inflate
    in an 8-bit window the way websockets inflates them: checks that the messages of the
    window test would catch a server that ignores `server_max_window_bits=8`."""
    compressor = zlib.compressobj(wbits=-15)
    decompressor = zlib.decompressobj(wbits=-8)
    try:
        for message in messages:
            data = (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
            # websockets inflates a frame under 2044 bytes in one call, a larger one in two.
            if len(data) < 2044:
                decompressor.decompress(data + SYNC_FLUSH_TAIL)
            else:
                decompressor.decompress(data)
                decompressor.decompress(SYNC_FLUSH_TAIL)
    except zlib.error:
        return True
    return False


async def closed_by_server(ws: ClientConnection) -> int:
    """Waits for the server to close the connection; the code of its Close frame."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout=10)
    except ConnectionClosedError:
        pass
    received = ws.protocol.close_rcvd
    check(received is not None, "the connection ended without a Close from the server")
    return received.code


class ForcedRsv1(Extension):
    """Not an extension: sets RSV1 on every data frame we send, on a connection that negotiated
    no extension, to check how the server reacts."""

    name = "x-forced-rsv1"

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode in CTRL_OPCODES:
            return frame
        return Frame(frame.opcode, frame.data, frame.fin, True, frame.rsv2, frame.rsv3)

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return frame


@test
async def test_text_round_trip(args):
    """text round trips (ASCII, non-ASCII, empty)"""
    async with open_socket(args) as ws:
        for message in ["hello", "привет 👋", ""]:
            await round_trip(ws, message)


@test
async def test_binary_round_trip(args):
    """binary round trips (small, all byte values, empty)"""
    async with open_socket(args) as ws:
        for message in [b"\x00\x01\x02\xff", bytes(range(256)), b""]:
            await round_trip(ws, message)


@test
async def test_one_mib_text(args):
    """1 MiB text round trip"""
    async with open_socket(args) as ws:
        await round_trip(ws, ("0123456789abcdef" * (MIB // 16)))


@test
async def test_one_mib_binary(args):
    """1 MiB binary round trip"""
    async with open_socket(args) as ws:
        await round_trip(ws, os.urandom(MIB))


@test
async def test_fragmented_message(args):
    """a fragmented message comes back whole"""
    # websockets sends an iterable as one message in several frames.
    async with open_socket(args) as ws:
        await ws.send(["frag", "ment", "ed ✓"])
        echoed = await asyncio.wait_for(ws.recv(), timeout=10)
        check(echoed == "fragmented ✓", f"got {echoed!r}")


@test
async def test_many_messages_in_order(args):
    """200 messages come back in order"""
    async with open_socket(args) as ws:
        messages = [f"message {i}" for i in range(200)]
        for message in messages:
            await ws.send(message)
        echoed = [await asyncio.wait_for(ws.recv(), timeout=10) for _ in messages]
        check(echoed == messages, "echoes out of order or missing")


@test
async def test_ping_pong(args):
    """ping/pong, payloads of 0, 12 and 125 bytes"""
    async with open_socket(args) as ws:
        for payload in [b"", b"ping payload", bytes(125)]:
            pong = await ws.ping(payload)
            # websockets completes the waiter only when a Pong with this payload comes back.
            try:
                await asyncio.wait_for(pong, timeout=10)
            except asyncio.TimeoutError:
                check(False, f"no Pong for the {len(payload)}-byte Ping within 10 s")
        # The socket still echoes after the pings.
        await round_trip(ws, "after pings")


@test
async def test_subprotocol_chat(args):
    """subprotocol: `chat` offered and chosen"""
    async with open_socket(args, subprotocols=["chat"]) as ws:
        check(ws.subprotocol == "chat", f"negotiated {ws.subprotocol!r}, expected 'chat'")
        await round_trip(ws, "chatting")


@test
async def test_subprotocol_chosen_from_several(args):
    """subprotocol: `chat` chosen from `superchat, chat`"""
    async with open_socket(args, subprotocols=["superchat", "chat"]) as ws:
        check(ws.subprotocol == "chat", f"negotiated {ws.subprotocol!r}, expected 'chat'")


@test
async def test_subprotocol_not_spoken(args):
    """subprotocol: `superchat` offered, none chosen"""
    async with open_socket(args, subprotocols=["superchat"]) as ws:
        check(ws.subprotocol is None, f"negotiated {ws.subprotocol!r}, expected none")
        await round_trip(ws, "no protocol")


@test
async def test_clean_close(args):
    """clean close: 1000 on both sides (server side from its log)"""
    async with open_socket(args) as ws:
        await round_trip(ws, "before close")
        client_port = ws.local_address[1]
        await ws.close(1000, "done here")
        protocol = ws.protocol
        check(protocol.close_sent is not None and protocol.close_sent.code == 1000, "client did not send 1000")
        received = protocol.close_rcvd
        check(received is not None, "no Close from the server")
        check(received.code == 1000, f"server answered the close with {received.code}")
        check(protocol.close_rcvd_then_sent is False, "the client should have closed first")
    # The server side: its log line for this connection shows the client's 1000.
    pattern = re.compile(
        rf"WebSocket connection ended.*peer=127\.0\.0\.1:{client_port}\b.*close_code=1000 "
        r'close_reason="done here"'
    )
    deadline = time.monotonic() + 10
    while True:
        with open(args.server_log, encoding="utf-8", errors="replace") as log:
            if any(pattern.search(line) for line in log):
                break
        check(time.monotonic() < deadline, f"no server log line for peer port {client_port} with code 1000")
        await asyncio.sleep(0.05)


@test
async def test_close_without_code(args):
    """close without a status code is answered in kind (1005)"""
    async with open_socket(args) as ws:
        await ws.close(None)  # an empty Close: no status code
        received = ws.protocol.close_rcvd
        check(received is not None, "no Close from the server")
        check(received.code == 1005, f"server answered an empty Close with {received.code}")


@test
async def test_allowed_origin(args):
    """allowed origin connects"""
    async with open_socket(args, origin=ALLOWED_ORIGIN) as ws:
        await round_trip(ws, "from an allowed origin")


@test
async def test_refused_origin_gets_403(args):
    """refused origin gets HTTP 403"""
    try:
        async with open_socket(args, origin=REFUSED_ORIGIN):
            pass
    except InvalidStatus as e:
        status = e.response.status_code
        check(status == 403, f"got HTTP {status}, expected 403")
    else:
        raise AssertionError(f"the server accepted Origin: {REFUSED_ORIGIN}")


@test
async def test_plain_get_gets_400(args):
    """plain GET /ws gets HTTP 400"""
    http_url = args.url.replace("ws://", "http://", 1)

    def get() -> int:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(http_url, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    status = await asyncio.to_thread(get)
    check(status == 400, f"got HTTP {status}, expected 400")


# --- permessage-deflate (RFC 7692) -----------------------------------------------------------


@test
async def test_compression_off_declines(args):
    """compression off: the plain server declines websockets' deflate offer (server log compression=false)"""
    async with open_socket(args) as ws:
        offer = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        check(offer.startswith("permessage-deflate"), f"websockets offered {offer!r}")
        check(extension_header(ws) is None, f"the server answered {extension_header(ws)!r}")
        check(ws.protocol.extensions == [], f"negotiated {ws.protocol.extensions!r}")
        await round_trip(ws, "uncompressed")
        fields = await server_log_fields(args.server_log, "WebSocket opened", ws.local_address[1])
    check(fields.get("compression") == "false", f"the server logged compression={fields.get('compression')}")


@test
async def test_deflate_negotiated(args):
    """deflate: negotiated with websockets' default offer (server log compression=true)"""
    async with open_socket(args, args.deflate_url) as ws:
        offer = ws.request.headers["Sec-WebSocket-Extensions"]
        check(offer == "permessage-deflate; client_max_window_bits", f"websockets offered {offer!r}")
        params = answer_params(ws)
        # client_max_window_bits may be answered, as the client offered it; nothing else.
        check(set(params) <= {"client_max_window_bits"}, f"unexpected parameters in {extension_header(ws)!r}")
        extension = deflate_extension(ws)
        check(not extension.remote_no_context_takeover, "the server turned its context takeover off")
        check(extension.remote_max_window_bits == 15, f"server window {extension.remote_max_window_bits} bits")
        wire = WireFrames(ws)
        await compressed_round_trip(ws, wire, "hello, compressed")
        fields = await server_log_fields(args.deflate_log, "WebSocket opened", ws.local_address[1])
    check(fields.get("compression") == "true", f"the server logged compression={fields.get('compression')}")


@test
async def test_deflate_text_sizes(args):
    """deflate: text round trips, empty to 3 MiB of JSON, every echo compressed"""
    async with open_socket(args, args.deflate_url) as ws:
        wire = WireFrames(ws)
        for message in ["", "a", "привет 👋", chat_json(10_000), random_text(64 * 1024), "x" * 300_000]:
            await compressed_round_trip(ws, wire, message)
        json_message = chat_json(3 * MIB)
        size = await compressed_round_trip(ws, wire, json_message)
        # JSON chat traffic shrinks 5–15× (issue 11); a third is a loose bound.
        check(size < len(json_message) // 3, f"{len(json_message)} bytes of JSON took {size} on the wire")


@test
async def test_deflate_binary_sizes(args):
    """deflate: binary round trips, empty to 2 MiB (random bytes and zeros), every echo compressed"""
    async with open_socket(args, args.deflate_url) as ws:
        wire = WireFrames(ws)
        for message in [b"", b"\x00", bytes(range(256)), os.urandom(100_000)]:
            await compressed_round_trip(ws, wire, message)
        # Random bytes do not compress. Deflate never needs more than 9 bits a byte (fixed
        # Huffman codes; stored blocks need less): at most an eighth more, plus block headers.
        noise = os.urandom(MIB + MIB // 2)
        size = await compressed_round_trip(ws, wire, noise)
        check(size < len(noise) + len(noise) // 8 + 1024, f"{len(noise)} random bytes took {size} on the wire")
        zeros = bytes(2 * MIB)
        size = await compressed_round_trip(ws, wire, zeros)
        check(size < len(zeros) // 32, f"{len(zeros)} zeros took {size} bytes on the wire")


@test
async def test_deflate_fragmented(args):
    """deflate: fragmented sends come back whole, with a Ping between the fragments"""
    async with open_socket(args, args.deflate_url) as ws:
        wire = WireFrames(ws)
        # websockets sends an iterable as one message in several frames: the first with RSV1.
        pieces = ["frag", "ment", "ed ✓ ", chat_json(50_000)]
        await ws.send(pieces)
        echoed = await asyncio.wait_for(ws.recv(), timeout=10)
        check(echoed == "".join(pieces), f"got {len(echoed)} characters back, expected {len(''.join(pieces))}")
        sent = wire.take_message(wire.sent)
        check(len(sent) == len(pieces) + 1, f"sent {len(sent)} frames")
        check(sent[0].rsv1 and not any(frame.rsv1 for frame in sent[1:]), "RSV1 not on the first frame only")
        wire.compressed_echo()

        parts = [b"\x01" * 1000, os.urandom(2000), b"\x02" * 70_000]
        pongs = []

        async def fragments() -> AsyncIterator[bytes]:
            yield parts[0]
            # A Ping between two frames of the compressed message.
            pongs.append(await ws.ping(b"between fragments"))
            for part in parts[1:]:
                yield part

        await ws.send(fragments())
        echoed = await asyncio.wait_for(ws.recv(), timeout=10)
        check(echoed == b"".join(parts), "the binary echo differs")
        check(len(pongs) == 1, "no Ping sent")
        await asyncio.wait_for(pongs[0], timeout=10)
        sent = wire.take_message(wire.sent)
        check(len(sent) == len(parts) + 1, f"sent {len(sent)} frames")
        wire.compressed_echo()


@test
async def test_deflate_in_order_ping_close(args):
    """deflate: 200 messages in order, ping/pong, clean close with 1000"""
    async with open_socket(args, args.deflate_url) as ws:
        wire = WireFrames(ws)
        messages = [json.dumps({"seq": i, "text": f"message {i}"}) for i in range(200)]
        for message in messages:
            await ws.send(message)
        echoed = [await asyncio.wait_for(ws.recv(), timeout=10) for _ in messages]
        check(echoed == messages, "echoes out of order or missing")
        for _ in messages:
            wire.compressed_echo()
        pong = await ws.ping(b"compressed socket")
        await asyncio.wait_for(pong, timeout=10)
        client_port = ws.local_address[1]
        await ws.close(1000, "done")
        check(ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000, "no 1000 from the server")
    fields = await server_log_fields(args.deflate_log, "WebSocket connection ended", client_port)
    check(fields.get("close_code") == "1000", f"the server logged close_code={fields.get('close_code')}")
    check(fields.get("echoed") == "200", f"the server logged echoed={fields.get('echoed')}")


async def repeated_echo_sizes(ws: ClientConnection) -> tuple[int, int]:
    """The wire sizes of the echoes of one message sent twice (4 KiB that does not repeat within)."""
    wire = WireFrames(ws)
    message = random_text(4096)
    first = await compressed_round_trip(ws, wire, message)
    second = await compressed_round_trip(ws, wire, message)
    return first, second


@test
async def test_deflate_context_takeover(args):
    """deflate: context takeover: a repeated message goes out as a back-reference"""
    async with open_socket(args, args.deflate_url) as ws:
        first, second = await repeated_echo_sizes(ws)
    check(first > 2000, f"4 KiB of random text took only {first} bytes")
    check(second < 100, f"the repeat took {second} bytes (the first {first}): no context kept")


@test
async def test_deflate_server_no_context_takeover(args):
    """deflate --server-no-context-takeover: the answer says so, and each message starts afresh"""
    async with open_socket(args, args.no_takeover_url) as ws:
        params = answer_params(ws)
        check("server_no_context_takeover" in params, f"the answer {extension_header(ws)!r} lacks it")
        check(params["server_no_context_takeover"] is None, "server_no_context_takeover with a value")
        check(deflate_extension(ws).remote_no_context_takeover, "websockets did not take it")
        first, second = await repeated_echo_sizes(ws)
        wire = WireFrames(ws)
        await compressed_round_trip(ws, wire, chat_json(500_000))
        fields = await server_log_fields(args.no_takeover_log, "WebSocket opened", ws.local_address[1])
    check(second == first, f"the repeat took {second} bytes, the first {first}: the context was kept")
    check(fields.get("compression") == "true", f"the server logged compression={fields.get('compression')}")


@test
async def test_deflate_client_asks_no_context_takeover(args):
    """deflate: a client's server_no_context_takeover is granted"""
    deflate = ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)
    async with open_socket(args, args.deflate_url, extensions=[deflate]) as ws:
        params = answer_params(ws)
        check("server_no_context_takeover" in params, f"the answer {extension_header(ws)!r} lacks it")
        first, second = await repeated_echo_sizes(ws)
    check(second == first, f"the repeat took {second} bytes, the first {first}: the context was kept")


@test
async def test_deflate_server_max_window_bits_8(args):
    """deflate: server_max_window_bits=8 is answered, and no distance passes 256 bytes"""
    # Repeats further apart than 256 bytes: across messages, and within long ones.
    first = random_text(600)
    long_text = random_text(400) * 500
    long_binary = os.urandom(300) * 300
    for case in ([first.encode(), first.encode()], [long_text.encode()], [long_binary]):
        # A server compressing with a 15-bit window would fail each case.
        check(breaks_an_8_bit_window(case), "the test messages would not catch a 15-bit window")
    deflate = ClientPerMessageDeflateFactory(server_max_window_bits=8)
    async with open_socket(args, args.deflate_url, extensions=[deflate]) as ws:
        check(answer_params(ws).get("server_max_window_bits") == "8", f"the server answered {extension_header(ws)!r}")
        check(deflate_extension(ws).remote_max_window_bits == 8, "websockets inflates with a wider window")
        wire = WireFrames(ws)
        # websockets inflates with C zlib and an 8-bit window: a longer distance fails the
        # connection ("invalid distance too far back", 1002).
        for message in [first, first, long_text, long_binary, chat_json(200_000)]:
            await compressed_round_trip(ws, wire, message)


@test
async def test_deflate_not_offered(args):
    """deflate: a client that does not offer compression gets none (server log compression=false)"""
    async with open_socket(args, args.deflate_url, compression=None) as ws:
        check("Sec-WebSocket-Extensions" not in ws.request.headers, "websockets offered an extension")
        check(extension_header(ws) is None, f"the server answered {extension_header(ws)!r}")
        check(ws.protocol.extensions == [], f"negotiated {ws.protocol.extensions!r}")
        # websockets fails a frame with RSV1 set here: the echoes must come uncompressed.
        for message in ["plain", chat_json(100_000), os.urandom(1000)]:
            await round_trip(ws, message)
        fields = await server_log_fields(args.deflate_log, "WebSocket opened", ws.local_address[1])
    check(fields.get("compression") == "false", f"the server logged compression={fields.get('compression')}")


@test
async def test_deflate_corrupt_data(args):
    """deflate: corrupt compressed data gets 1007"""
    async with open_socket(args, args.deflate_url) as ws:
        await round_trip(ws, "before")
        extension = deflate_extension(ws)
        # 0xff starts a deflate block of the reserved type 3.
        extension.encode = lambda frame: Frame(frame.opcode, b"\xff\xff\xff", frame.fin, True)
        await ws.send("this goes out corrupted")
        code = await closed_by_server(ws)
    check(code == 1007, f"the server closed with {code}, expected 1007")


@test
async def test_deflate_rsv1_on_continuation(args):
    """deflate: RSV1 on a continuation frame gets 1002"""
    async with open_socket(args, args.deflate_url) as ws:
        extension = deflate_extension(ws)
        encode = extension.encode

        def rsv1_everywhere(frame: Frame) -> Frame:
            encoded = encode(frame)
            return Frame(encoded.opcode, encoded.data, encoded.fin, encoded.opcode not in CTRL_OPCODES)

        extension.encode = rsv1_everywhere
        await ws.send(["first", "second"])
        code = await closed_by_server(ws)
    check(code == 1002, f"the server closed with {code}, expected 1002")


@test
async def test_rsv1_without_negotiation(args):
    """deflate: RSV1 on a connection that negotiated no compression gets 1002"""
    async with open_socket(args, args.deflate_url, compression=None) as ws:
        await round_trip(ws, "before")
        ws.protocol.extensions.append(ForcedRsv1())
        await ws.send("RSV1 without an extension")
        code = await closed_by_server(ws)
    check(code == 1002, f"the server closed with {code}, expected 1002")


@test
async def test_deflate_bomb(args):
    """deflate: 64 MiB of zeros (64 KiB compressed) against a 1 MiB limit gets 1009"""
    async with open_socket(args, args.no_takeover_url) as ws:
        wire = WireFrames(ws)
        # Under the limit: echoed.
        await compressed_round_trip(ws, wire, bytes(NO_TAKEOVER_MAX_MESSAGE_SIZE))
        bomb = bytes(64 * MIB)
        await ws.send(bomb)
        bomb_frame = wire.take_message(wire.sent)
        check(len(bomb_frame[0].data) < 128 * 1024, f"the bomb took {len(bomb_frame[0].data)} bytes")
        code = await closed_by_server(ws)
        client_port = ws.local_address[1]
    check(code == 1009, f"the server closed with {code}, expected 1009")
    fields = await server_log_fields(args.no_takeover_log, "WebSocket connection ended", client_port)
    check(fields.get("echoed") == "1", f"the server logged echoed={fields.get('echoed')}")
    # The server still serves.
    async with open_socket(args, args.no_takeover_url) as ws:
        await round_trip(ws, "after the bomb")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the echo server's WebSocket URL, ws://HOST:PORT/ws")
    parser.add_argument("--server-log", required=True, help="the echo server's log file")
    parser.add_argument("--deflate-url", required=True, help="the URL of a server started with --compression")
    parser.add_argument("--deflate-log", required=True, help="that server's log file")
    parser.add_argument(
        "--no-takeover-url",
        required=True,
        help="the URL of a server started with --compression --server-no-context-takeover --max-message-size 1048576",
    )
    parser.add_argument("--no-takeover-log", required=True, help="that server's log file")
    args = parser.parse_args()

    print(f"websockets {websockets.__version__} against {args.url}, {args.deflate_url} and {args.no_takeover_url}")
    passed = failed = 0
    for name, function in TESTS:
        try:
            await asyncio.wait_for(function(args), timeout=60)
        except Exception as e:  # noqa: BLE001: report every failure and go on
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            if os.environ.get("VERBOSE"):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
