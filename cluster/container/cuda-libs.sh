#!/usr/bin/env bash
# cuda-libs.sh — the shared libraries that facet's CUDA modules load and that
# no Debian package provides (the CUDA runtime, cuBLASLt, NCCL), found with
# ldd, so that Containerfile.cuda copies exactly those into its runtime image.
# The libraries a Debian package owns come from the runtime stage's package
# list instead (tests/deploy/containers.sh checks that list).
#
#   cuda-libs.sh --list FILE...       print "SONAME PATH" for each such library
#   cuda-libs.sh --copy DIR FILE...   copy them into DIR under their sonames
#                                     (symbolic links followed)
#
# Fails when ldd cannot resolve a library (copying a partial set would give
# an image whose module fails to load on the GPU machine, far from here).
set -euo pipefail
usage() { echo "usage: cuda-libs.sh --list FILE... | --copy DIR FILE..." >&2; exit 2; }
[ $# -ge 2 ] || usage
mode=$1
shift
case $mode in
--list) ;;
--copy) dir=$1; shift; [ $# -ge 1 ] || usage; mkdir -p "$dir" ;;
*) usage ;;
esac

# The names a library may be registered under in dpkg: with /usr merged, under
# /lib or /usr/lib, and as its soname link or the file that link names.
names() {
    local p=$1 real
    real=$(readlink -f "$p")
    printf '%s\n' "$p" "$real" "/usr$p" "/usr$real" "${p#/usr}" "${real#/usr}"
}

declare -A seen=() path_of=()
for f in "$@"; do
    [ -f "$f" ] || { echo "cuda-libs.sh: no such file: $f" >&2; exit 1; }
    out=$(ldd "$f") || { echo "cuda-libs.sh: ldd failed on $f" >&2; exit 1; }
    if grep -q 'not found' <<<"$out"; then
        echo "cuda-libs.sh: $f needs libraries ldd cannot find:" >&2
        grep 'not found' <<<"$out" >&2
        exit 1
    fi
    # lines "soname => /path (address)"; the vDSO and the loader have no "=> /"
    while read -r soname path; do
        [ -n "${seen[$soname]:-}" ] && continue
        seen[$soname]=1
        path_of[$soname]=$path
    done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' <<<"$out")
done
[ ${#path_of[@]} -gt 0 ] || exit 0

# one dpkg query for every name of every library (one per library is slow)
declare -A owned=()
mapfile -t candidates < <(for s in "${!path_of[@]}"; do names "${path_of[$s]}"; done | sort -u)
while IFS= read -r line; do
    owned[${line#*: }]=1
done < <(dpkg-query --search "${candidates[@]}" 2>/dev/null || true)

for soname in $(printf '%s\n' "${!path_of[@]}" | sort); do
    path=${path_of[$soname]}
    debian=
    while read -r n; do
        [ -n "${owned[$n]:-}" ] && debian=1
    done < <(names "$path")
    [ -n "$debian" ] && continue
    if [ "$mode" = --list ]; then
        echo "$soname $path"
    else
        cp -L "$path" "$dir/$soname"
    fi
done
