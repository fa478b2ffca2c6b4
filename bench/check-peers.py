#!/usr/bin/env python3
"""Checks that the GraphQL systems of a benchmark run answer the same data for every workload.

    bench/check-peers.py OUT_DIR WORKLOADS SYSTEM=URL[=TOKEN] ...

Sends each workload's request body (OUT_DIR/bodies/<system>-<workload>.json, as bench/run.sh
writes them) once to each system, with the same ids for all of them: `{{FUND}}` becomes the first
line of OUT_DIR/open_funds.txt, `{{INVESTOR}}` the first of OUT_DIR/investors.txt and `{{UUID}}`
a fresh UUID. The answers are compared after normalising what legitimately differs between the
schemas: field names (PostGraphile 4's `fundById`/`investmentsByFundId`/`id`, PostGraphile 5's
`fundByRowId`/`rowId`, titanbay's `fund`/`investments`/`id`), the enum spelling of `status`
(titanbay `FUNDRAISING`, PostGraphile the column's text `Fundraising`) and timestamps (compared as
instants: `…20.011+00:00`, `…20.011000+00:00` and `…20.011000Z` are the same). W5 creates one
investment per system: its answers must agree on the amount, and a PostGraphile answer must carry
the id it was sent (titanbay generates its own). Exits 1 when an answer has errors, is empty, or
differs from the first system's.
"""
import datetime
import json
import re
import sys
import urllib.request
import uuid

NAMES = {
    "fundById": "fund", "fundByRowId": "fund", "fundByFundId": "fund",
    "investorById": "investor", "investorByRowId": "investor", "investorByInvestorId": "investor",
    "investmentsByFundId": "investments", "investmentsByInvestorId": "investments",
    "allFunds": "funds", "rowId": "id",
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def normalise(value, key=None):
    if isinstance(value, dict):
        return {NAMES.get(k, k): normalise(v, NAMES.get(k, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        if key == "status":
            return value.upper()
        if TIMESTAMP.match(value):
            instant = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return instant.astimezone(datetime.timezone.utc).isoformat(timespec="microseconds")
    return value


def rows(value):
    """How many rows the answer holds: objects with a scalar field of their own, at every level."""
    if isinstance(value, dict):
        own = any(not isinstance(v, (dict, list)) for v in value.values())
        return int(own) + sum(rows(v) for v in value.values())
    if isinstance(value, list):
        return sum(rows(v) for v in value)
    return 0


def post(url, token, body):
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"content-type": "application/json", "accept": "application/json"})
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def main():
    out, workloads, systems = sys.argv[1], sys.argv[2].split(), []
    for spec in sys.argv[3:]:
        name, url, *token = spec.split("=", 2)
        systems.append((name, url, token[0] if token else None))
    fund = open(f"{out}/open_funds.txt").readline().strip()
    investor = open(f"{out}/investors.txt").readline().strip()
    failed = False
    for workload in workloads:
        answers = []
        for name, url, token in systems:
            sent = str(uuid.uuid4())
            template = open(f"{out}/bodies/{name}-{workload}.json").read()
            body = template.replace("{{FUND}}", fund).replace("{{INVESTOR}}", investor).replace("{{UUID}}", sent)
            try:
                status, answer = post(url, token, body)
            except Exception as e:  # noqa: BLE001 - reported as the check's failure
                print(f"check {workload} {name}: request failed: {e}", file=sys.stderr)
                failed = True
                continue
            if status != 200 or answer.get("errors") or not answer.get("data"):
                print(f"check {workload} {name}: HTTP {status}: {json.dumps(answer)[:500]}", file=sys.stderr)
                failed = True
                continue
            (data,) = normalise(answer["data"]).values()  # the one root field, whatever its name
            if workload == "w5":
                created = data.get("investment", data)  # PostGraphile wraps it in a payload
                if "{{UUID}}" in template and created.get("id") != sent:
                    print(f"check w5 {name}: created id {created.get('id')}, sent {sent}", file=sys.stderr)
                    failed = True
                data = {k: v for k, v in created.items() if k != "id"}
            if not rows(data):
                print(f"check {workload} {name}: empty answer {json.dumps(answer)[:300]}", file=sys.stderr)
                failed = True
            answers.append((name, data))
        if not answers:
            continue
        first_name, first = answers[0]
        same = [name for name, data in answers[1:] if data == first]
        differ = [name for name, data in answers[1:] if data != first]
        for name in differ:
            print(f"check {workload}: {name} differs from {first_name}:\n  {first_name}: {json.dumps(first)[:800]}\n"
                  f"  {name}: {json.dumps(dict(answers)[name])[:800]}", file=sys.stderr)
            failed = True
        print(f"check {workload}: {rows(first)} rows; {', '.join([first_name] + same)} agree"
              + (f"; {', '.join(differ)} differ" if differ else ""), file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
