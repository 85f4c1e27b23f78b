"""The reporting the checkers of tests/deploy share: one line per property,
"ok: WHAT" or "FAIL: WHAT: DETAIL", and an exit status of 1 when any failed
(or when nothing was checked at all)."""
import sys

results = {"ok": 0, "failed": 0, "quiet": False}


def report(ok, what, detail=""):
    if ok:
        results["ok"] += 1
        if not results["quiet"]:
            print(f"ok: {what}")
    else:
        results["failed"] += 1
        if not results["quiet"]:
            print(f"FAIL: {what}{': ' + str(detail) if detail else ''}")
    return bool(ok)


def finish():
    sys.exit(1 if results["failed"] or not results["ok"] else 0)
