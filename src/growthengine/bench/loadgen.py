"""The HTTP load generator of ``growth bench ingest``, run in its own process.

It posts pre-serialized ``/v1/batch`` bodies over several keep-alive connections with a minimal HTTP/1.1 client
on asyncio (uvloop when installed), so that the client costs little next to the server. It prints progress lines
(``progress <events>``) and, at the end, one line ``result <json>`` with the wall time, its own CPU time and the
counts the server answered.

Usage: ``python -m growthengine.bench.loadgen --port P --key K --bodies FILE --connections C``
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

_LENGTH = struct.Struct("<II")  # body length, events in the body


@dataclass(slots=True)
class LoadResult:
    seconds: float = 0.0
    client_cpu_s: float = 0.0
    requests: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    started_at: float = 0.0
    """When the first requests went, on the clock of the process that ran the load generator (``perf_counter``)."""


def write_bodies(path: Path, bodies: list[tuple[bytes, int]]) -> None:
    """Store request bodies (and how many events each holds) for the load generator to read."""
    with path.open("wb") as out:
        for body, events in bodies:
            out.write(_LENGTH.pack(len(body), events))
            out.write(body)


def read_bodies(path: Path) -> list[tuple[bytes, int]]:
    data = path.read_bytes()
    bodies: list[tuple[bytes, int]] = []
    pos = 0
    while pos < len(data):
        size, events = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        bodies.append((data[pos : pos + size], events))
        pos += size
    return bodies


def _request(port: int, key: str, body: bytes) -> bytes:
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run(port: int, key: str, bodies: list[tuple[bytes, int]], connections: int) -> LoadResult:
    requests = [(_request(port, key, body), events) for body, events in bodies]
    result = LoadResult()
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    next_index = 0
    done_events = 0
    reported = 0
    step = max(1, sum(e for _, e in requests) // 200)

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal next_index, done_events, reported
        while next_index < len(requests):
            request, events = requests[next_index]
            next_index += 1
            sent = time.perf_counter()
            try:
                writer.write(request)
                status, body = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                result.errors.append(f"connection failed: {type(exc).__name__}: {exc}")
                return
            result.latencies_ms.append((time.perf_counter() - sent) * 1000)
            result.requests += 1
            result.events += events
            if status != 200:
                result.errors.append(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}")
                continue
            answer = orjson.loads(body)
            result.accepted += answer["accepted"]
            result.duplicates += answer["duplicates"]
            result.rejected += len(answer["rejected"])
            done_events += events
            if done_events - reported >= step:
                reported = done_events
                print(f"progress {done_events}", flush=True)

    cpu0 = time.process_time()
    print("started", flush=True)  # the caller's own clock marks it: the burst starts now, not at the launch
    start = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in streams))
    result.seconds = time.perf_counter() - start
    result.client_cpu_s = time.process_time() - cpu0
    for _, writer in streams:
        writer.close()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="growthengine.bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--bodies", type=Path, required=True)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    bodies = read_bodies(args.bodies)
    loop_factory = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but the client works without it
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(_run(args.port, args.key, bodies, args.connections))
    sys.stdout.write("result " + orjson.dumps(asdict(result)).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
