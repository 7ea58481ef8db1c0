"""New connections are accepted off the event loop (`ridehail.server.Acceptor`): a loop that
runs behind no longer leaves them in the listen queue (uvloop accepts one per turn of its
loop), and each is then served by the loop like any other."""

from __future__ import annotations

import asyncio
import socket
import time

from ridehail.server import Acceptor


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        self.transport.write(b"pong:" + data)


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def test_connections_are_accepted_while_the_loop_is_blocked_then_served_by_it() -> None:
    """The loop never watches the listening socket here: only the acceptor takes
    connections, and it takes all of them while the loop is stuck in one callback."""
    lsock = listener()
    port = lsock.getsockname()[1]
    n = 20

    async def run() -> tuple[int, list[bytes]]:
        loop = asyncio.get_running_loop()
        acceptor = Acceptor(lsock, loop, Echo)
        acceptor.start()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
        # The loop is busy for a while (a long callback): the acceptor does not wait for it.
        deadline = time.monotonic() + 5
        while acceptor.accepted < n and time.monotonic() < deadline:
            time.sleep(0.01)  # blocks the loop on purpose
        accepted_while_blocked = acceptor.accepted
        for i, client in enumerate(clients):
            client.sendall(str(i).encode())
        replies = [await loop.run_in_executor(None, c.recv, 64) for c in clients]
        for client in clients:
            client.close()
        await loop.run_in_executor(None, acceptor.stop)
        return accepted_while_blocked, replies

    accepted, replies = asyncio.run(run())
    lsock.close()
    assert accepted == n
    assert replies == [f"pong:{i}".encode() for i in range(n)]


def test_stopping_the_acceptor_leaves_later_connections_to_the_loop() -> None:
    lsock = listener()
    port = lsock.getsockname()[1]

    async def run() -> int:
        loop = asyncio.get_running_loop()
        acceptor = Acceptor(lsock, loop, Echo)
        acceptor.start()
        await loop.run_in_executor(None, acceptor.stop)
        late = socket.create_connection(("127.0.0.1", port), timeout=5)
        await asyncio.sleep(3 * Acceptor.POLL_S)
        late.close()
        return acceptor.accepted

    assert asyncio.run(run()) == 0
    lsock.close()
