#!/usr/bin/env bash
# Every shell script of the repository parses (`bash -n`, or `sh -n` for
# POSIX sh ones): scripts the suite never runs end to end — bench/peers/,
# cluster/ helpers — cannot rot unnoticed (bench/peers/llamacpp.sh once
# did: an apostrophe inside ${VAR:?...} opened a quote).
# usage: scripts_syntax.sh ROOT
set -u
ROOT=$1
checked=0 failed=0
while IFS= read -r -d '' f; do
    first=$(head -c 64 "$f" | head -1)
    case "$first" in
    '#!'*bash*) shell=bash ;;
    '#!'*/sh*) shell=sh ;;
    *) case "$f" in *.sh) shell=bash ;; *) continue ;; esac ;;
    esac
    checked=$((checked + 1))
    if ! out=$("$shell" -n "$f" 2>&1); then
        echo "FAIL: $f does not parse ($shell -n): $out"
        failed=$((failed + 1))
    fi
done < <(find "$ROOT" \( -name .git -o -name .venv -o -name 'build*' -o -name node_modules \) -prune -o \
    -type f \( -name '*.sh' -o -path '*/scripts/*' -o -path '*/.ci/*' \) -print0)
echo "scripts_syntax: $checked scripts, $failed do not parse"
[ "$checked" -gt 0 ] && [ "$failed" -eq 0 ]
