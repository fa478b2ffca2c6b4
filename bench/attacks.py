#!/usr/bin/env python3
"""The hostile clients of issue 19, against a running server, with what each one costs it.

    bench/attacks.py --url http://127.0.0.1:8000 --pid <server pid>

Run it against a release build with authentication off (development mode, the default) on a
database you can write to (it creates one fund and one investor). Every attack prints one line:
what was sent, the answer's codes and size, and what it cost the server (CPU seconds of its
process, resident memory after), plus, for the attacks that aim at other clients, the p99 of a
normal client meanwhile. Only the standard library is used.
"""

import argparse
import http.client
import json
import os
import resource
import socket
import statistics
import threading
import time
import urllib.parse

TICK = os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, url, pid):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.pid = pid

    def cpu(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def post(self, body, headers=None, timeout=120):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json"}
        h.update(headers or {})
        conn.request("POST", "/graphql", data, h)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        return response.status, raw, parsed

    def get(self, path):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request("GET", path)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        return response.status, raw


def codes(parsed):
    errors = parsed.get("errors") or [] if isinstance(parsed, dict) else []
    return sorted({(e.get("extensions") or {}).get("code", "?") for e in errors})


def report(name, sent, status, raw, parsed, cpu, server, extra=""):
    print(
        f"| {name} | {sent} | {status} {','.join(codes(parsed)) or 'ok'} | {len(raw):,} B "
        f"| {cpu:.3f} s | {server.rss_mib():.1f} MiB | {extra} |",
        flush=True,
    )


def timed(server, fn):
    before = server.cpu()
    result = fn()
    return result, server.cpu() - before


class NormalClient(threading.Thread):
    """Back-to-back small queries on one kept-alive connection; latencies in ms."""

    QUERY = {"query": "{ funds(first: 1) { nodes { id name } } }"}

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server, self.stop, self.latencies, self.failures = server, False, [], 0

    def run(self):
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
        body = json.dumps(self.QUERY).encode()
        while not self.stop:
            started = time.perf_counter()
            try:
                conn.request("POST", "/graphql", body, {"content-type": "application/json"})
                response = conn.getresponse()
                raw = response.read()
                if response.status != 200 or b'"errors"' in raw:
                    self.failures += 1
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn.close()
                conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=60)
            self.latencies.append((time.perf_counter() - started) * 1000)

    def p99(self):
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[98]


def with_normal_client(server, attack, seconds):
    """p99 of a normal client alone, then while `attack` runs in two threads for `seconds`."""
    alone = NormalClient(server)
    alone.start()
    time.sleep(seconds / 2)
    alone.stop = True
    alone.join()
    normal = NormalClient(server)
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                attack()
            except (OSError, http.client.HTTPException):
                pass

    attackers = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
    before = server.cpu()
    normal.start()
    for a in attackers:
        a.start()
    time.sleep(seconds)
    stop.set()
    normal.stop = True
    for a in attackers:
        a.join()
    normal.join()
    return alone.p99(), normal.p99(), normal.failures, server.cpu() - before


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--idle", type=int, default=20000, help="idle connections to open")
    args = ap.parse_args()
    server = Server(args.url, args.pid)
    print("| attack | sent | answer | answer size | server CPU | server RSS after | notes |")
    print("|---|---|---|---|---|---|---|")

    # 1. A 0.9 MB document of 450,000 fields, and two clients sending it in a loop.
    huge = {"query": "{ funds { nodes { " + "id " * 300_000 + "} } }"}
    huge_bytes = json.dumps(huge).encode()
    (status, raw, parsed), cpu = timed(server, lambda: server.post(huge_bytes))
    report("huge document", f"{len(huge_bytes):,} B, 300,000 fields", status, raw, parsed, cpu, server)
    alone, under, failures, cpu = with_normal_client(server, lambda: server.post(huge_bytes), 10)
    print(
        f"| 2 clients looping the huge document | 10 s | | | {cpu:.2f} s | {server.rss_mib():.1f} MiB "
        f"| normal client p99 {alone:.1f} ms alone → {under:.1f} ms under attack, {failures} failures |"
    )

    # 2. A 900 KB nameContains.
    long_filter = {
        "query": "query($t: String!) { funds(filter: { nameContains: $t }) { nodes { id } } }",
        "variables": {"t": "x" * 900_000},
    }
    (status, raw, parsed), cpu = timed(server, lambda: server.post(long_filter))
    report("900 KB nameContains", "one request", status, raw, parsed, cpu, server)

    # 3. Operation names of 500 KB as metric labels, and 1,000 distinct valid names.
    name = "A" * 500_000

    def names():
        for _ in range(20):
            server.post({"query": "{ __typename }", "operationName": name})
        for i in range(1000):
            server.post({"query": f"query Op{i} {{ __typename }}"})
        sizes = [len(server.get("/metrics")[1]) for _ in range(4)]
        return sizes

    sizes, cpu = timed(server, names)
    print(
        f"| 500 KB operation names ×20, 1,000 distinct names, 4 scrapes | | | /metrics {sizes[-1]:,} B "
        f"| {cpu:.2f} s | {server.rss_mib():.1f} MiB | |"
    )

    # 4. 1,100 distinct 1 MB documents registered as automatic persisted queries.
    import hashlib

    def apq():
        answers = {}
        for i in range(1100):
            doc = "{ __typename " + f"# {i} " + "x" * 1_000_000 + "\n}"
            sha = hashlib.sha256(doc.encode()).hexdigest()
            body = {
                "query": doc,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}},
            }
            _, _, parsed = server.post(body)
            key = ",".join(codes(parsed)) or "ok"
            answers[key] = answers.get(key, 0) + 1
        return answers

    answers, cpu = timed(server, apq)
    print(
        f"| 1,100 APQ registrations of 1 MB documents | | {answers} | | {cpu:.2f} s "
        f"| {server.rss_mib():.1f} MiB | |"
    )

    # 5. A 0.9 MB parse error.
    bad = {"query": "{ funds " + "b " * 450_000 + "("}
    (status, raw, parsed), cpu = timed(server, lambda: server.post(bad))
    report("0.9 MB parse error", "one request", status, raw, parsed, cpu, server)

    # 6. 10,000 unused variables.
    decl = ", ".join(f"$v{i}: Int" for i in range(10_000))
    many = {"query": f"query Q({decl}) {{ __typename }}"}
    (status, raw, parsed), cpu = timed(server, lambda: server.post(many))
    report(
        "10,000 unused variables",
        f"{len(json.dumps(many)):,} B",
        status,
        raw,
        parsed,
        cpu,
        server,
        f"{len(parsed.get('errors') or [])} errors",
    )

    # 7. NUL in a name, and the totals at the edge.
    nul = {
        "query": "mutation($n: String!) { createFund(input: { name: $n, vintageYear: 2024, targetSizeUsd: \"1.00\" }) { id } }",
        "variables": {"n": "a\u0000b"},
    }
    (status, raw, parsed), cpu = timed(server, lambda: server.post(nul))
    report("U+0000 in a fund name", "one request", status, raw, parsed, cpu, server)
    _, _, fund = server.post(
        {"query": "mutation { createFund(input: { name: \"Attack edge fund\", vintageYear: 2024, targetSizeUsd: \"1.00\" }) { id } }"}
    )
    fund_id = fund["data"]["createFund"]["id"]
    stamp = str(time.time_ns())
    _, _, investor = server.post(
        {
            "query": "mutation($e: String!) { createInvestor(input: { name: \"Edge\", investorType: INDIVIDUAL, email: $e }) { id } }",
            "variables": {"e": f"edge-{stamp}@example.com"},
        }
    )
    investor_id = investor["data"]["createInvestor"]["id"]
    create = (
        "mutation($f: UUID!, $i: UUID!, $a: Decimal!) { createInvestment(input: { fundId: $f, "
        "investorId: $i, amountUsd: $a, investmentDate: \"2024-01-01\" }) { id } }"
    )
    for _ in range(2):
        server.post({"query": create, "variables": {"f": fund_id, "i": investor_id, "a": "999999999999999999.99"}})
    status, raw, parsed = server.post(
        {"query": "query($f: UUID!) { fund(id: $f) { totalCommittedUsd } }", "variables": {"f": fund_id}}
    )
    report(
        "two investments of 999999999999999999.99",
        "then the fund's total",
        status,
        raw,
        parsed,
        0.0,
        server,
        f"total {((parsed.get('data') or {}).get('fund') or {}).get('totalCommittedUsd')}",
    )

    # 8. 30 writes queued on one fund's lock, while a normal client reads.
    def thirty_writes():
        threads = [
            threading.Thread(
                target=server.post,
                args=({"query": create, "variables": {"f": fund_id, "i": investor_id, "a": "1.00"}},),
            )
            for _ in range(30)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    alone, under, failures, cpu = with_normal_client(server, thirty_writes, 10)
    print(
        f"| 2 × 30 writes at once on one fund's lock | 10 s | | | {cpu:.2f} s | {server.rss_mib():.1f} MiB "
        f"| normal client p99 {alone:.1f} ms alone → {under:.1f} ms, {failures} failures |"
    )

    # 9. Idle connections: open many, say nothing, see whether a normal request still answers and
    #    whether the server closes them.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + 1024), hard))
    except (ValueError, OSError):
        pass
    socks = []
    opened_at = time.monotonic()
    for _ in range(args.idle):
        try:
            s = socket.create_connection((server.host, server.port), timeout=5)
            s.setblocking(False)
            socks.append(s)
        except OSError:
            break
    # Every connection is at least 12 s old when they are checked (the header timeout is 10 s).
    opened_at = time.monotonic()
    started = time.perf_counter()
    try:
        status, raw, parsed = server.post(NormalClient.QUERY, timeout=30)
        normal = f"a normal request answered {status} in {(time.perf_counter() - started) * 1000:.0f} ms"
    except OSError as e:
        normal = f"a normal request failed: {e}"
    time.sleep(max(0.0, 12 - (time.monotonic() - opened_at)))
    closed = 0
    for s in socks:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    print(
        f"| {len(socks):,} idle connections | nothing sent | | | | {server.rss_mib():.1f} MiB "
        f"| {normal}; {closed:,} closed by the server within 12 s of opening |"
    )


if __name__ == "__main__":
    main()
