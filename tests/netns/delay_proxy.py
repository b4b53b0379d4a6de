#!/usr/bin/env python3
"""A TCP proxy that adds latency, for nexnet's multi-host tests (tests/netns.rs).

    delay_proxy.py --delay-ms 20 LISTEN_IP:PORT=TARGET_IP:PORT ...

Every byte read from one side is written to the other `--delay-ms` later, in
both directions, so a connection through it sees twice that added to its
round trip. Bandwidth is not limited: up to MAX_QUEUED bytes per direction are
in flight inside the proxy (more than a 1 Gbit/s link holds in 20 ms), and
beyond that the proxy stops reading, which is TCP's own back-pressure.

Prints "ready" on stdout once it listens on every address, and one line per
connection on stderr when it ends ("closed ID A->B up=BYTES down=BYTES"), so
a test can tell how much went through it.
"""

import argparse
import asyncio
import itertools
import sys
import time

CHUNK = 64 * 1024
MAX_QUEUED = 8 * 1024 * 1024

ids = itertools.count(1)


async def pump(reader, writer, delay, counter):
    """Copies reader to writer, each chunk `delay` seconds after it arrived."""
    queue = asyncio.Queue(maxsize=MAX_QUEUED // CHUNK)

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK)
                await queue.put((time.monotonic() + delay, data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((time.monotonic() + delay, None))

    async def write_side():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:  # the source failed: fail the other side too
                writer.transport.abort()
                return
            if not data:  # the source closed its sending side: pass it on
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            counter[0] += len(data)

    reading = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reading.cancel()


async def handle(client_reader, client_writer, target, delay):
    conn = next(ids)
    peer = client_writer.get_extra_info("peername")
    up, down = [0], [0]
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError as e:
        print(f"refused {conn} {peer} -> {target}: {e}", file=sys.stderr, flush=True)
        client_writer.transport.abort()
        return
    try:
        await asyncio.gather(
            pump(client_reader, server_writer, delay, up),
            pump(server_reader, client_writer, delay, down),
        )
    except (ConnectionError, OSError):
        pass
    finally:
        for w in (client_writer, server_writer):
            w.transport.abort()
        print(
            f"closed {conn} {peer[0]}:{peer[1]}->{target[0]}:{target[1]} "
            f"up={up[0]} down={down[0]}",
            file=sys.stderr,
            flush=True,
        )


def addr(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("maps", nargs="+", metavar="LISTEN=TARGET")
    args = parser.parse_args()
    delay = args.delay_ms / 1000
    servers = []
    for m in args.maps:
        listen, _, target = m.partition("=")
        target = addr(target)
        servers.append(
            await asyncio.start_server(
                lambda r, w, t=target: handle(r, w, t, delay),
                *addr(listen),
                reuse_address=True,
            )
        )
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
