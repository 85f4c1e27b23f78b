# lib.sh — helpers for the command-line tests. Each test script sources it,
# calls check/expect_error, and ends with `finish`, which prints the tally
# and exits non-zero on any failure.
set -u
FACET=$1
FIXTURES=$2
WORK=$3
rm -rf "$WORK"
mkdir -p "$WORK"
checks=0
failed=0

# a free TCP port on the loopback interface
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# servers a test starts in the background: append their pids; killed on exit
pids=()
kill_background() { [ ${#pids[@]} -eq 0 ] || { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; }; }
trap kill_background EXIT

check() { # check "what" command...
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@"; then :; else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
    fi
}

# expect_error "what" "substring" command...: exit status 1 or 2 (an error,
# not a crash or a signal), exactly one line on stderr naming the problem,
# and no sanitizer report.
expect_error() {
    local what=$1 needle=$2
    shift 2
    checks=$((checks + 1))
    local rc=0
    "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
    local lines
    lines=$(wc -l <"$WORK/err")
    if [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
        failed=$((failed + 1))
        echo "FAIL: $what: exit status $rc (want 1 or 2)" >&2
        sed 's/^/    /' "$WORK/err" >&2
    elif [ "$lines" -ne 1 ] || grep -qE 'Sanitizer|runtime error' "$WORK/err"; then
        failed=$((failed + 1))
        echo "FAIL: $what: want one line of error, got $lines:" >&2
        sed 's/^/    /' "$WORK/err" >&2
    elif ! grep -qF -- "$needle" "$WORK/err"; then
        failed=$((failed + 1))
        echo "FAIL: $what: error does not mention \"$needle\": $(cat "$WORK/err")" >&2
    else
        echo "ok: $what: $(cat "$WORK/err")"
    fi
}

finish() {
    # every process these tests ran logs under $WORK: none may have reported
    # a sanitizer error (in the ASan build), even one that exited 0
    check "no sanitizer report in any log" bash -c "! grep -rlE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' '$WORK'"
    echo "$(basename "$0"): $checks checks, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}
