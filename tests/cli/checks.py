"""checks.py — the Python side of the command-line tests' assertions (the
shell side is lib.sh): check() prints "ok: what" or "FAIL: what detail" and
counts; done() prints the tally and exits non-zero on any failure; sse_events()
reads a server-sent event stream."""
import json
import sys

_checks = 0
_failed = 0


def check(what, cond, detail=""):
    global _checks, _failed
    _checks += 1
    if cond:
        print(f"ok: {what}")
    else:
        _failed += 1
        print(f"FAIL: {what} {str(detail)[:500]}", file=sys.stderr)
    return bool(cond)


def done(name):
    print(f"{name}: {_checks} checks, {_failed} failed")
    sys.exit(1 if _failed else 0)


def sse_events(resp):
    """The JSON events of an OpenAI-style SSE response, in order; the last
    item is None when the stream ended with "data: [DONE]" (else it just ends)."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        if line == b"data: [DONE]":
            yield None
            return
        yield json.loads(line[6:])
