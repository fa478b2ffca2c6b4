#!/usr/bin/env python3
"""Turns bench/out/results.jsonl into the Markdown report: the main table (titanbay, PostGraphile 4,
PostGraphile 5, raw SQL and the ratios), the details, the goal check, CPU and every round. Works on
results with any subset of the systems (columns of absent systems are left out)."""
import datetime
import json
import os
import platform
import subprocess
import sys

results_path, scale, duration = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
# Results of runs before PostGraphile 5 joined call PostGraphile 4 "postgraphile".
for r in rows:
    r["system"] = {"postgraphile": "postgraphile4"}.get(r["system"], r["system"])
rounds = {}
for r in rows:
    rounds.setdefault((r["system"], r["workload"], r["concurrency"]), []).append(r)


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def combine(runs):
    """One figure per measurement: the median of each rate, latency and CPU figure over the
    rounds; errors and requests summed; the largest peak RSS and maximum latency."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if not isinstance(value, (int, float)) or key in ("concurrency", "round"):
            continue
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if key in ("errors", "requests"):
            out[key] = sum(values)
        elif key in ("peak_rss_kib", "max_ms"):
            out[key] = max(values)
        else:
            out[key] = median(values)
    out["rounds"] = len(runs)
    return out


by = {key: combine(runs) for key, runs in rounds.items()}


def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:  # noqa: BLE001 - a missing tool only blanks a line of the header
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def mem_gib():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "?"


root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = [("postgraphile4", "PG4"), ("postgraphile5", "PG5")]
measured = {r["system"] for r in rows if r["workload"].startswith("W")}
peers = [(s, label) for s, label in PEERS if s in measured]
has_t, has_p = "titanbay" in measured, "pgbench" in measured


def peer_version(system):
    """'4.14.1 on node v20.20.2' from the run's own "version" row, else from the installed package."""
    row = by.get((system, "version", 0))
    if row:
        return f"{row['postgraphile']} on node {row['node']}"
    for folder in (system, "node" if system == "postgraphile4" else None):
        pkg = folder and os.path.join(root, f"bench/out/{folder}/node_modules/postgraphile/package.json")
        if pkg and os.path.exists(pkg):
            return json.load(open(pkg))["version"]
    return "?"


pg_version = cmd("psql", "--version")
print(f"## Benchmark results ({scale} scale, {datetime.date.today().isoformat()})\n")
print(f"- machine: {cpu_model()}, {os.cpu_count()} cores, {mem_gib()} RAM, {platform.system()} {platform.release()}")
versions = [cmd("rustc", "--version"), f"PostgreSQL ({pg_version})"]
versions += [f"{label} = PostGraphile {peer_version(s)}" + (" (amber preset)" if s == "postgraphile5" else "") for s, label in peers]
print(f"- versions: {'; '.join(versions)}")
print(f"- each figure: {duration} s recorded after a warm-up, closed loop (each client sends its next request when the answer arrives); "
      "server, PostgreSQL, PostGraphile and the load driver share the same cores")
max_rounds = max((len(v) for k, v in rounds.items() if k[1].startswith("W")), default=1)
if max_rounds > 1:
    print(f"- at 32 clients each system was measured {max_rounds} times, interleaved; the tables show the median "
          "of each figure (errors summed, the largest RSS); every round is listed at the end")
print()

workloads = sorted({r["workload"] for r in rows if r["workload"].startswith("W")})
concurrencies = sorted({r["concurrency"] for r in rows if r["workload"].startswith("W")})


def cell(r, key, fmt):
    return fmt.format(r[key]) if r and key in r else "–"


def times(a, b):
    """a's requests/s as a multiple of b's."""
    return f"{a['rps'] / b['rps']:.2f}×" if a and b and b.get("rps") else "–"


def p99_ratio(a, b):
    """a's p99 as a fraction of b's (the goal: at most 0.33)."""
    return f"{a['p99_ms'] / b['p99_ms']:.2f}" if a and b and b.get("p99_ms") else "–"


def share(t, p):
    return f"{100 * t['rps'] / p['rps']:.0f} %" if t and p and p.get("rps") else "–"


def rss(r):
    return f"{r['peak_rss_kib'] / 1024:.1f}" if r and r.get("peak_rss_kib") else "–"


# The main table: requests/s and p99 of every system, titanbay's ratios to each peer.
head, cols = ["workload", "clients"], []
if has_t:
    head += ["titanbay req/s", "p99 ms"]
    cols += [lambda k: cell(by.get(("titanbay",) + k), "rps", "{:,.0f}"), lambda k: cell(by.get(("titanbay",) + k), "p99_ms", "{:.2f}")]
for s, label in peers:
    head += [f"{label} req/s", "p99 ms"]
    cols += [lambda k, s=s: cell(by.get((s,) + k), "rps", "{:,.0f}"), lambda k, s=s: cell(by.get((s,) + k), "p99_ms", "{:.2f}")]
if has_p:
    head += ["raw SQL tps", "p99 ms"]
    cols += [lambda k: cell(by.get(("pgbench",) + k), "rps", "{:,.0f}"), lambda k: cell(by.get(("pgbench",) + k), "p99_ms", "{:.2f}")]
if has_t:
    for s, label in peers:
        head += [f"× {label}", f"p99 ÷ {label}"]
        cols += [lambda k, s=s: times(by.get(("titanbay",) + k), by.get((s,) + k)),
                 lambda k, s=s: p99_ratio(by.get(("titanbay",) + k), by.get((s,) + k))]
if len(peers) == 2:
    head += ["PG5 ÷ PG4"]
    cols += [lambda k: times(by.get(("postgraphile5",) + k), by.get(("postgraphile4",) + k))]
if has_t and has_p:
    head += ["vs raw SQL"]
    cols += [lambda k: share(by.get(("titanbay",) + k), by.get(("pgbench",) + k))]


def table(head, lines):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for line in lines:
        print("| " + " | ".join(line) + " |")


keys = [(w, c) for w in workloads for c in concurrencies if any((s, w, c) in by for s in measured)]
table(head, [[w, str(c)] + [f((w, c)) for f in cols] for w, c in keys])
notes = [", ".join(f"{label}: PostGraphile {peer_version(s)}" for s, label in peers)] if peers else []
if has_t and peers:
    notes.append("`× PGn`: titanbay's requests/s over that PostGraphile's; `p99 ÷ PGn`: titanbay's p99 over that "
                 "PostGraphile's (the goal: at most 0.33)")
if len(peers) == 2:
    notes.append("`PG5 ÷ PG4`: PostGraphile 5's requests/s over PostGraphile 4's")
if notes:
    print("\n" + "; ".join(notes) + ".")

if any(w.endswith("r") for w in workloads):
    print("\nW1r, W2r, W4r: W1, W2 and W4 with a random id in every request (a fund among the open ones, about 820 "
          "investments each, or an investor), where identical reads rarely meet"
          + (" and titanbay shares almost none (see the statements per request below)" if has_t else "")
          + "; not part of the goal, which uses the fixed ids.")

# The details: p50, errors and peak RSS of every system.
print("\n### Details: p50, errors, peak RSS\n")
systems = ([("titanbay", "titanbay")] if has_t else []) + peers + ([("pgbench", "raw SQL")] if has_p else [])
dhead = ["workload", "clients"]
for s, label in systems:
    dhead += [f"{label} p50 ms", "errors"] + (["RSS MiB"] if s != "pgbench" else [])
dlines = []
for w, c in keys:
    line = [w, str(c)]
    for s, _ in systems:
        r = by.get((s, w, c))
        line += [cell(r, "p50_ms", "{:.2f}"), cell(r, "errors", "{}")] + ([rss(r)] if s != "pgbench" else [])
    dlines.append(line)
table(dhead, dlines)

goals = {"W1": 25, "W2": 50, "W3": 65, "W4": 45, "W5": 70}
goal_lines = []
for w in workloads:
    t, p = by.get(("titanbay", w, 32)), by.get(("pgbench", w, 32))
    for s, label in peers:
        g = by.get((s, w, 32))
        if not (t and g and p):
            continue
        ratio, pct, third = t["rps"] / g["rps"], 100 * t["rps"] / p["rps"], g["p99_ms"] / 3
        ok = ratio >= 3 and pct >= goals.get(w, 0) and t["p99_ms"] <= third and t["errors"] == 0
        goal_lines.append([w, label, f"{ratio:.2f}×", f"{pct:.0f} % ({goals.get(w, 0)} %)",
                           f"{t['p99_ms']:.2f} ms vs {third:.2f} ms", str(t["errors"]), "yes" if ok else "no"])
if goal_lines:
    print("\n### Goal at 32 clients (≥ 3 × the peer, ≥ the share of raw SQL, p99 ≤ ⅓ of the peer's), against each peer\n")
    table(["workload", "peer", "× peer", "% of raw SQL (goal)", "p99 vs ⅓ the peer's p99", "errors", "holds"], goal_lines)

cpu_rows = [(w, by.get(("titanbay", w, 32)), [by.get((s, w, 32)) for s, _ in peers]) for w in workloads]
if any(r and r.get("server_cpu_us_per_req") for _, t, g in cpu_rows for r in [t] + g):
    print("\n### Where the CPU goes at 32 clients\n")
    print("Server CPU per request (user + system), and the server's share of all the CPU the machine spent "
          "(server + PostgreSQL + driver) during the recorded seconds; `busy` is how much of the 2 cores was in use.\n")
    if has_t:
        print("titanbay's SQL statements per request (over the warm-up and the recorded seconds, from its "
              "`/metrics`).\n")
    pct = lambda r, k: f"{100 * r[k]:.0f} %" if r and r.get(k) is not None else "–"
    us = lambda r: f"{r['server_cpu_us_per_req']:.0f}" if r and r.get("server_cpu_us_per_req") is not None else "–"
    per = lambda r, k: f"{r[k]:.2f}" if r and r.get(k) is not None else "–"
    chead = ["workload"]
    if has_t:
        chead += ["titanbay µs/req", "titanbay share", "busy", "statements/req"]
    for _, label in peers:
        chead += [f"{label} µs/req", f"{label} share", "busy"]
    clines = []
    for w, t, gs in cpu_rows:
        line = [w]
        if has_t:
            line += [us(t), pct(t, "server_cpu_share"), pct(t, "machine_busy"), per(t, "statements_per_request")]
        for g in gs:
            line += [us(g), pct(g, "server_cpu_share"), pct(g, "machine_busy")]
        clines.append(line)
    table(chead, clines)

print()
start = by.get(("titanbay", "start", 0))
if start:
    ms = start["cold_start_ms"]
    print(f"Cold start to ready (migrated database, process start until `/readyz` answers 200): {', '.join(map(str, ms))} ms (median {sorted(ms)[len(ms) // 2]} ms).")
for s, label in ([("titanbay", "titanbay")] if has_t else []) + peers:
    peak = max((r.get("peak_rss_kib", 0) for r in rows if r["system"] == s and r["workload"].startswith("W")), default=0)
    if peak:
        print(f"Peak {'server' if s == 'titanbay' else label} RSS over all {label} runs: {peak / 1024:.1f} MiB.")
errors = sum(r.get("errors", 0) for r in rows if r["workload"].startswith("W"))
print(f"Errors over all runs (all systems): {errors}.")

if max_rounds > 1:
    print("\n### Every round at 32 clients (req/s / p99 ms)\n")
    order = ([("titanbay", "titanbay")] if has_t else []) + peers + ([("pgbench", "raw SQL")] if has_p else [])
    rhead = ["workload", "round"] + [label for _, label in order]
    if has_t:
        rhead += [f"× {label}" for _, label in peers] + (["% of raw SQL"] if has_p else [])
    rlines = []
    for w in workloads:
        runs = {s: {r.get("round", 1): r for r in rounds.get((s, w, 32), [])} for s, _ in order}
        for n in sorted(set().union(*[set(v) for v in runs.values()])):
            fig = lambda r: f"{r['rps']:,.0f} / {r['p99_ms']:.2f}" if r else "–"
            line = [w, str(n)] + [fig(runs[s].get(n)) for s, _ in order]
            if has_t:
                t = runs["titanbay"].get(n)
                line += [times(t, runs[s].get(n)) for s, _ in peers]
                if has_p:
                    line += [share(t, runs["pgbench"].get(n))]
            rlines.append(line)
    table(rhead, rlines)
