#!/usr/bin/env python3
"""Overload figures against a running rankserve server, all measured in one run. Not a test.

1. Overload: C concurrent completions against a small --max-queue-size: how many were admitted, how
   many got 429, and how many of those carried Retry-After (target: every one).
2. Slowloris: N connections that send half a header and then trickle a byte now and then. While they
   are open, /v2/health/ready latency is measured and compared with the same measure before they
   opened (target: p99 under slowloris <= 2x the idle p99, or under 50 ms); then the time until the
   server closed them (the header timeout, 30 s) and how many it closed (target: all).

usage: overload_bench.py URL CONCURRENT SLOW_CONNECTIONS
"""
import asyncio
import json
import sys
import time
import urllib.parse


async def http(host, port, method, path, body=b"", timeout=120):
    reader, writer = await asyncio.open_connection(host, port)
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), timeout)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    headers = rest.split(b"\r\n\r\n", 1)[0].decode(errors="replace").lower()
    return int(status_line.split()[1]), headers


async def health_latencies(host, port, count):
    out = []
    for _ in range(count):
        start = time.perf_counter()
        status, _ = await http(host, port, "GET", "/v2/health/ready", timeout=10)
        out.append(time.perf_counter() - start)
        if status != 200:
            raise SystemExit(f"health answered {status}")
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99) - 1]


async def overload(host, port, concurrent):
    body = json.dumps({"prompt": "The capital of Poland is", "max_tokens": 32, "temperature": 0}).encode()
    results = await asyncio.gather(*(http(host, port, "POST", "/v1/completions", body) for _ in range(concurrent)))
    ok = sum(1 for s, _ in results if s == 200)
    limited = [h for s, h in results if s == 429]
    with_retry = sum(1 for h in limited if "retry-after:" in h)
    other = concurrent - ok - len(limited)
    print(f"overload: {concurrent} concurrent completions: {ok} admitted, {len(limited)} got 429, {with_retry} of them with Retry-After, {other} other")
    print(f"ratio 429 with Retry-After / 429 = {with_retry / max(1, len(limited)):.2f} (target 1.00)")


async def slowloris(host, port, count):
    idle_p50, idle_p99 = await health_latencies(host, port, 200)
    conns = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET /v2/health/ready HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
        conns.append((reader, writer))
    await asyncio.gather(*(w.drain() for _, w in conns))
    opened = time.perf_counter()

    async def trickle():
        while True:
            await asyncio.sleep(5)
            for _, w in conns:
                if not w.is_closing():
                    w.write(b"a")

    trickler = asyncio.ensure_future(trickle())
    busy_p50, busy_p99 = await health_latencies(host, port, 200)

    async def closed_at(reader):
        try:
            await asyncio.wait_for(reader.read(), 90)
            return time.perf_counter() - opened
        except asyncio.TimeoutError:
            return None

    times = await asyncio.gather(*(closed_at(r) for r, _ in conns))
    trickler.cancel()
    closed = [t for t in times if t is not None]
    print(f"slowloris: {count} slow connections; health p50/p99 {idle_p50 * 1e3:.1f}/{idle_p99 * 1e3:.1f} ms idle, "
          f"{busy_p50 * 1e3:.1f}/{busy_p99 * 1e3:.1f} ms with them open")
    print(f"slowloris: {len(closed)} of {count} closed by the server, after {min(closed or [0]):.1f}-{max(closed or [0]):.1f} s")
    print(f"ratio health p99 slowloris / idle = {busy_p99 / idle_p99:.2f} (target <= 2, or p99 < 50 ms); "
          f"closed / opened = {len(closed) / count:.2f} (target 1.00)")


def main():
    url, concurrent, slow = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    parsed = urllib.parse.urlparse(url)
    asyncio.run(overload(parsed.hostname, parsed.port, concurrent))
    asyncio.run(slowloris(parsed.hostname, parsed.port, slow))


if __name__ == "__main__":
    main()
