#!/usr/bin/env python3
"""layers.py ROOT BUILD — the architecture of docs/ARCHITECTURE.md, checked.

1. Every #include "folder/file.h" points to the same folder or to a folder of
   a lower layer (the table below). Generated headers count as their
   library's: facet/v1/*.pb-c.h and grpc/health/v1/*.pb-c.h are protocol's,
   sentencepiece/*.pb-c.h the tokenizer's.
2. No cycle between folders (implied by 1, checked on its own so that a
   wrong table cannot hide one).
3. Inside coordinator/ and worker/, no loop of calls among the files: from
   the object files in BUILD, file A uses file B when A references a symbol
   B defines; the graph must be acyclic, so membership -> scheduler -> front
   ends runs one way.
4. The build's link lines point down too: every facet_* library named in
   DEPS (CMakeLists.txt) or target_link_libraries of a facet_* library is of
   a lower layer.
5. The memory policy of common/alloc.h: a raw malloc/calloc/realloc/strdup
   outside the listed places whose failures are reported to the caller.

Prints what it checked; exits 1 on any violation, naming file and line.
"""
import glob
import os
import re
import subprocess
import sys

LAYERS = {
    "common": 0,
    "tokenizer": 1, "rpc": 1, "comm": 1, "kernels/cpu": 1, "kernels": 1, "protocol": 1,
    "model": 2,
    "kernels/cuda": 3,
    "worker": 4, "coordinator": 4,
    "cluster": 5,
    "bench": 6,
    "cli": 7,
}
GENERATED = {"facet": "protocol", "grpc": "protocol", "sentencepiece": "tokenizer"}
LIBRARIES = {
    "facet_common": "common", "facet_tokenizer": "tokenizer", "facet_rpc": "rpc", "facet_comm": "comm",
    "facet_kernels_cpu": "kernels/cpu", "facet_protocol": "protocol", "facet_model": "model",
    "facet_worker": "worker", "facet_coordinator": "coordinator", "facet_cluster": "cluster",
    "facet_bench": "bench", "facet_cli": "cli",
}
SOURCE_EXT = (".c", ".h", ".cc", ".cu", ".cuh")
# Raw allocations allowed: sizes that come from a checkpoint, a request or a
# configuration, whose NULL becomes an error for the caller (see alloc.h);
# and the modules loaded with dlopen, which link no facet library.
RAW_ALLOC_OK = {
    "common/alloc.c": None, "comm/nccl.c": None, "comm/comm_impl.h": None, "comm/store_local.c": None,
    "comm/ipc.c": None,
    "comm/bench_comm.c": ["slowest = malloc"],
    "model/weights.c": ["w->layers = calloc", "aligned_alloc(huge", "aligned_alloc(64, rounded"],
    "worker/kv_cache.c": None, "worker/engine.c": ["e->pos = malloc", "aligned_alloc(64,"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
RAW_ALLOC = re.compile(r"(?<![\w.>])(malloc|calloc|realloc|strdup|strndup|aligned_alloc)\(")

failures = []


def fail(msg):
    failures.append(msg)


def folder_of(path):
    """The layered folder a repository path belongs to (longest match), or None."""
    parts = path.split("/")
    for n in (2, 1):
        f = "/".join(parts[:n])
        if len(parts) > n and f in LAYERS:
            return f
    if parts[0] in GENERATED:
        return GENERATED[parts[0]]
    return None


def sources(root):
    for folder in LAYERS:
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            fail(f"layer table names {folder}/, which does not exist")
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isfile(p) and name.endswith(SOURCE_EXT):
                yield f"{folder}/{name}"


def check_includes(root):
    edges = {}
    n = 0
    for rel in sources(root):
        src = folder_of(rel)
        text = open(os.path.join(root, rel), encoding="utf-8", errors="replace").read()
        for m in INCLUDE.finditer(text):
            target = m.group(1)
            dst = folder_of(target)
            if dst is None:
                continue  # a header next to the file, or a test's own
            n += 1
            line = text.count("\n", 0, m.start()) + 1
            if dst != src:
                edges.setdefault(src, set()).add(dst)
                if LAYERS[dst] >= LAYERS[src]:
                    fail(f"{rel}:{line}: includes {target}: {src}/ (layer {LAYERS[src]}) may not use "
                         f"{dst}/ (layer {LAYERS[dst]})")
    print(f"layers: {n} includes in {len(LAYERS)} folders checked against the layer table")
    return edges


def find_cycle(graph):
    """A cycle in graph (dict node -> set of nodes) as a list, or None."""
    color, stack = {}, []

    def visit(v):
        color[v] = 1
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if color.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if color.get(w) is None:
                c = visit(w)
                if c:
                    return c
        stack.pop()
        color[v] = 2
        return None

    for v in sorted(graph):
        if color.get(v) is None:
            c = visit(v)
            if c:
                return c
    return None


def defined_and_used(obj):
    """(symbols an object file defines, symbols it uses), from nm."""
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
    return defined, used


def check_calls(build, lib, folder):
    """No loop of calls among a folder's files: from the object files, file A
    uses file B when A references a symbol B defines."""
    objdir = os.path.join(build, "CMakeFiles", f"{lib}.dir", folder)
    objs = sorted(glob.glob(os.path.join(objdir, "*.o")))
    if not objs:
        fail(f"{folder}/: no object files under {objdir}: build first")
        return
    syms = {os.path.basename(o)[:-len(".c.o")]: defined_and_used(o) for o in objs}
    owner = {s: f for f, (d, _) in syms.items() for s in d}
    graph = {f: {owner[s] for s in u if s in owner and owner[s] != f} for f, (_, u) in syms.items()}
    cycle = find_cycle(graph)
    if cycle:
        fail(f"{folder}/: a loop of calls among its files: " + " -> ".join(cycle))
    order = topological(graph)
    print(f"layers: {folder}/: {len(graph)} files, {sum(len(v) for v in graph.values())} uses, no loop of calls"
          + (f"; from the bottom: {' < '.join(order)}" if order else ""))


def topological(graph):
    """Files with what they call before them, or [] when there is a loop."""
    done, order = set(), []

    def visit(v, seen):
        if v in done:
            return True
        if v in seen:
            return False
        seen.add(v)
        for w in sorted(graph.get(v, ())):
            if not visit(w, seen):
                return False
        done.add(v)
        order.append(v)
        return True

    for v in sorted(graph):
        if not visit(v, set()):
            return []
    return order


def check_link_lines(root):
    n = 0
    for cm in ("CMakeLists.txt", "comm/CMakeLists.txt"):
        text = open(os.path.join(root, cm), encoding="utf-8").read()
        calls = [(m.group(1), m.group(2)) for m in re.finditer(r"facet_library\((\w+)(.*?)\)\n", text, re.S)]
        calls += [(m.group(1), " DEPS " + m.group(2)) for m in
                  re.finditer(r"target_link_libraries\((facet_\w+)\s+(?:PUBLIC|PRIVATE)\s+(.*?)\)", text, re.S)]
        for lib, rest in calls:
            if lib not in LIBRARIES:
                continue
            deps = rest.split("DEPS", 1)[1].split() if "DEPS" in rest else []
            for dep in deps:
                if dep in LIBRARIES:
                    n += 1
                    a, b = LIBRARIES[lib], LIBRARIES[dep]
                    if LAYERS[b] >= LAYERS[a]:
                        fail(f"{cm}: {lib} ({a}/, layer {LAYERS[a]}) links {dep} ({b}/, layer {LAYERS[b]})")
    print(f"layers: {n} links between facet libraries point down")


def check_alloc(root):
    n = 0
    for rel in sources(root):
        if rel.startswith("kernels/cuda/"):
            continue  # the CUDA module: device code and its own error paths
        allowed = RAW_ALLOC_OK.get(rel, [])
        for i, line in enumerate(open(os.path.join(root, rel), encoding="utf-8"), 1):
            code = line.split("//")[0]
            if code.lstrip().startswith(("/*", "* ")) or not RAW_ALLOC.search(code):
                continue
            if rel in RAW_ALLOC_OK and (allowed is None or any(a in line for a in allowed)):
                n += 1
                continue
            fail(f"{rel}:{i}: a raw allocation: use xmalloc & co (common/alloc.h), or report its NULL and list it here")
    print(f"layers: memory policy: {n} raw allocations, each in a listed place that reports failure")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    build = sys.argv[2] if len(sys.argv) > 2 else None
    edges = check_includes(root)
    cycle = find_cycle(edges)
    if cycle:
        fail("a cycle between folders: " + " -> ".join(cycle))
    else:
        print(f"layers: {sum(len(v) for v in edges.values())} uses between folders, no cycle")
    if build:
        check_calls(build, "facet_coordinator", "coordinator")
        check_calls(build, "facet_worker", "worker")
    else:
        fail("give the build directory as the second argument: the loop-of-calls check reads its object files")
    check_link_lines(root)
    check_alloc(root)
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    print(f"layers: {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
