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

TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$TESTS${PYTHONPATH:+:$PYTHONPATH}" # checks.py for the Python helpers

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
    if "$@"; then
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
    fi
}

# verify "what" command...: like check, and shows the command's own lines
# under "ok: what" or "FAIL: what" (returns 1 on failure)
verify() {
    local what=$1
    shift
    checks=$((checks + 1))
    if "$@" >"$WORK/verify.out" 2>&1; then
        echo "ok: $what"
        sed 's/^/    /' "$WORK/verify.out"
    else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
        sed 's/^/    /' "$WORK/verify.out" >&2
        return 1
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

# same "what" A B: A and B are equal and neither is empty (two commands that
# both print nothing, or fail, are not "the same").
same() {
    local what=$1 a=$2 b=$3
    checks=$((checks + 1))
    if [ -z "$a" ] || [ -z "$b" ]; then
        failed=$((failed + 1))
        echo "FAIL: $what: empty output (${#a} and ${#b} bytes)" >&2
    elif [ "$a" != "$b" ]; then
        failed=$((failed + 1))
        printf 'FAIL: %s: they differ:\n    %s\n    %s\n' "$what" "${a:0:300}" "${b:0:300}" >&2
    else
        echo "ok: $what"
    fi
}

# differ "what" A B: A and B are both non-empty and not equal
differ() {
    local what=$1 a=$2 b=$3
    checks=$((checks + 1))
    if [ -z "$a" ] || [ -z "$b" ] || [ "$a" = "$b" ]; then
        failed=$((failed + 1))
        echo "FAIL: $what: want two different non-empty outputs, got \"${a:0:200}\" and \"${b:0:200}\"" >&2
    else
        echo "ok: $what"
    fi
}

# json FILE EXPR: the value at EXPR (Python subscripts, e.g. '["output_ids"]')
# in a JSON file; prints nothing and fails when the file is missing, not
# JSON, or has no such value -- so `same` catches it.
json() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$@" 2>/dev/null
}

# not command...: succeeds when the command fails (for check)
not() { ! "$@"; }

# wait_for SECONDS command...: polls every 0.1 s until the command succeeds
wait_for() {
    local tenths=$(($1 * 10))
    shift
    for _ in $(seq 1 "$tenths"); do "$@" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# wait_log SECONDS FILE TEXT: until FILE contains TEXT
wait_log() { wait_for "$1" grep -qsF -- "$3" "$2"; }
# http_ready PORT: GET /ready answers 200
http_ready() {
    python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$1/ready', timeout=5).status == 200 else 1)" 2>/dev/null
}
# start_serve NAME HTTP_PORT [serve options]: `facet serve` in the background
# (pid appended to pids, logs $WORK/NAME.out/.err); waits until it serves.
start_serve() {
    local name=$1 http=$2
    shift 2
    "$FACET" serve --http-port "$http" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    pids+=("$!")
    last=$!
    wait_log 30 "$WORK/$name.out" "Ctrl-C stops"
}

finish() {
    # every process these tests ran logs under $WORK: none may have reported
    # a sanitizer error (in the ASan build), even one that exited 0
    check "no sanitizer report in any log" bash -c "! grep -rlE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' '$WORK'"
    echo "$(basename "$0"): $checks checks, $failed failed"
    [ "$failed" -eq 0 ]
    exit $?
}
