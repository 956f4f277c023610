#!/usr/bin/env python3
"""Interop tests: the Python `websockets` client against the echo example.

Run through `scripts/python-interop.sh`, which starts the server as

    echo --bind 127.0.0.1:0 --protocol chat --allowed-origin https://somewhere.else

and passes its URL and log file here:

    python_interop.py --url ws://127.0.0.1:PORT/ws --server-log PATH

Prints one line per test and a final `N passed, M failed`; exits 1 when a test failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

MIB = 1024 * 1024
ALLOWED_ORIGIN = "https://somewhere.else"
REFUSED_ORIGIN = "https://evil.example"

TESTS: list[tuple[str, Callable[[argparse.Namespace], Awaitable[None]]]] = []


def test(function: Callable[[argparse.Namespace], Awaitable[None]]):
    """Registers a test, named by its docstring."""
    TESTS.append((function.__doc__ or function.__name__, function))
    return function


def open_socket(args: argparse.Namespace, **kwargs) -> connect:
    # No proxy: the server is on the loopback. Room for the 1 MiB echoes.
    kwargs.setdefault("max_size", 16 * MIB)
    return connect(args.url, proxy=None, open_timeout=10, close_timeout=10, **kwargs)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def round_trip(ws: ClientConnection, message: str | bytes) -> None:
    await ws.send(message)
    echoed = await asyncio.wait_for(ws.recv(), timeout=10)
    check(type(echoed) is type(message), f"sent {type(message).__name__}, got {type(echoed).__name__}")
    check(echoed == message, f"echo differs: sent {len(message)} long, got {len(echoed)}")


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
            # websockets matches the Pong to the Ping by its payload.
            latency = await asyncio.wait_for(pong, timeout=10)
            check(latency >= 0, "no pong")
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


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="the echo server's WebSocket URL, ws://HOST:PORT/ws")
    parser.add_argument("--server-log", required=True, help="the echo server's log file")
    args = parser.parse_args()

    print(f"websockets {websockets.__version__} against {args.url}")
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
