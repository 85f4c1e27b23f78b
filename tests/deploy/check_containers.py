#!/usr/bin/env python3
"""Checks of cluster/container/Containerfile.{cpu,cuda} that no image build is
needed for, for tests/deploy/containers.sh. One line per property ("ok: ..."
or "FAIL: ..."); exit status 1 if any failed.

  check_containers.py lint FILE --flavour cpu|cuda --repo REPO
      facet's own rules, beyond hadolint's: pinned base images, one Debian
      point release for build and runtime, apt-get hygiene, a runtime stage
      that only copies from earlier stages, a numeric non-root USER, the
      ENTRYPOINT, no model or secret baked in, a build stage that copies every
      folder CMakeLists.txt reads; and per flavour, CUDA (modules, libraries,
      driver capabilities) only in the CUDA image.
  check_containers.py packages FILE BINARY [MODULE...]
      the runtime stage's `apt-get install` list against `ldd`: every library
      BINARY and the MODULEs load comes from a listed package, a dependency of
      one, or the Debian base image (Priority: required, and what that
      depends on); a package that provides no library the binaries need
      directly is reported as extra. Libraries no Debian package owns are an
      error for BINARY, and for a MODULE the ones cuda-libs.sh copies.
      Uses this machine's dpkg database (Debian 12, as the images).
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

from checklib import finish, report

# ---- the Containerfile ------------------------------------------------------------------------------


def parse(path):
    """Stages: [{"image", "name", "line", "instrs": [(line, KEYWORD, text)]}],
    with continuation lines joined and comments dropped, as the builders do."""
    stages, buf, start = [], "", None
    with open(path) as f:
        lines = f.read().splitlines()
    instrs = []
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#") or (not s and not buf):
            continue
        start = start or i
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        kw, _, rest = buf.partition(" ")
        instrs.append((start, kw.upper(), rest.strip()))
        buf, start = "", None
    for ln, kw, rest in instrs:
        if kw == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"image": words[0], "name": name, "line": ln, "instrs": []})
        elif stages:
            stages[-1]["instrs"].append((ln, kw, rest))
    return stages


def runs(stage):
    return [text for _, kw, text in stage["instrs"] if kw == "RUN"]


def copies(stage):
    """(from-stage or None, [sources], destination) for every COPY and ADD."""
    out = []
    for _, kw, text in stage["instrs"]:
        if kw in ("COPY", "ADD"):
            words = shlex.split(text)
            frm = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            paths = [w for w in words if not w.startswith("--")]
            out.append((kw, frm, paths[:-1], paths[-1]))
    return out


def dest_dir(cps, src, dst):
    """The directory a COPY puts src in: dst itself when it ends in / or the
    COPY has several sources (the builders' rule), else dst's parent."""
    n = next(len(srcs) for _, _, srcs, d in cps if d == dst and src in srcs)
    return dst.rstrip("/") if dst.endswith("/") or n > 1 else os.path.dirname(dst)


def apt_packages(stage):
    """The packages of every `apt-get install` in the stage."""
    pkgs = []
    for text in runs(stage):
        for cmd in re.split(r"&&|;|\|\|", text):
            words = cmd.split()
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                after = words[words.index("install") + 1:]
                pkgs += [w for w in after if not w.startswith("-")]
    return pkgs


def debian_release(image):
    m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:(\d+\.\d+)(-slim)?(@sha256:[0-9a-f]{64})?", image)
    return m.group(1) if m else None


def cmake_folders(repo):
    """The top-level folders the CMake build reads (sources, subdirectories)."""
    with open(os.path.join(repo, "CMakeLists.txt")) as f:
        text = f.read()
    found = set(re.findall(r"add_subdirectory\(\s*([A-Za-z_][\w-]*)", text))
    found |= set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([A-Za-z_][\w-]*)", text))
    found |= set(re.findall(r"(?<![\w/}.$-])([a-z_][a-z0-9_]*)/[\w./-]+\.(?:c|cc|cpp|cu|h|proto)\b", text))
    return {d for d in found if os.path.isdir(os.path.join(repo, d))}


# ---- lint ------------------------------------------------------------------------------------------

def cmd_lint(a):
    stages = parse(a.file)
    if not report(len(stages) >= 2, f"{a.file}: a multi-stage build", f"{len(stages)} stage(s)"):
        finish()
    names = {s["name"] for s in stages if s["name"]}
    final = stages[-1]
    build = next((s for s in stages if any("scripts/build" in r for r in runs(s))), None)

    # base images
    for s in stages:
        img = s["image"]
        if img in names:
            continue
        tag = img.split("@")[0].rsplit(":", 1)[1] if ":" in img.split("@")[0].rsplit("/", 1)[-1] else ""
        pinned = re.search(r"@sha256:[0-9a-f]{64}$", img) or (re.search(r"\d+\.\d+", tag) and "latest" not in tag)
        report(pinned, f"line {s['line']}: FROM {img} is pinned (a digest, or a tag with a point release)")
    releases = {debian_release(s["image"]) for s in stages if debian_release(s["image"])}
    report(len(releases) == 1, "the build and runtime stages share one Debian point release (sonames agree)",
           f"releases {sorted(r for r in releases if r)}")
    report(bool(re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:\d+\.\d+-slim(@sha256:[0-9a-f]{64})?", final["image"])),
           f"the runtime stage is Debian slim ({final['image']})")

    # apt-get hygiene, in every stage
    for s in stages:
        for text in runs(s):
            if not re.search(r"apt-get\s+(-\S+\s+)*install", text):
                continue
            report("--no-install-recommends" in text and re.search(r"install\s+(\S+\s+)*-y\b|-y\s", text),
                   f"stage {s['name'] or s['image']}: apt-get install -y --no-install-recommends")
            report("apt-get update" in text and text.index("apt-get update") < text.index("install"),
                   f"stage {s['name'] or s['image']}: apt-get update in the same RUN, before the install")
            report("rm -rf /var/lib/apt/lists" in text,
                   f"stage {s['name'] or s['image']}: the apt lists are removed in the same RUN")

    # the runtime stage
    cps = copies(final)
    report(cps and all(kw == "COPY" and frm in names for kw, frm, _, _ in cps),
           "the runtime stage only copies from earlier stages (COPY --from=STAGE; no ADD, nothing from the context)",
           [f"{kw} --from={frm} {src}" for kw, frm, src, _ in cps if not (kw == "COPY" and frm in names)])
    users = [text for _, kw, text in final["instrs"] if kw == "USER"]
    last = users[-1] if users else ""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", last)
    report(m is not None and int(m.group(1)) != 0 and (m.group(2) is None or int(m.group(2)) != 0),
           f"the runtime stage's last USER is a numeric non-root uid:gid ({last or 'none'})")
    after_user = [kw for ln, kw, _ in final["instrs"]
                  if users and ln > max(l2 for l2, k2, _ in final["instrs"] if k2 == "USER") and kw in ("RUN", "COPY", "ADD")]
    report(not after_user, "nothing is installed after the USER switch", after_user)
    eps = [text for _, kw, text in final["instrs"] if kw == "ENTRYPOINT"]
    report(eps and eps[-1].replace(" ", "") == '["/usr/local/bin/facet"]',
           "ENTRYPOINT [\"/usr/local/bin/facet\"] (exec form)", eps)
    facet_copy = [(frm, src, dst) for kw, frm, srcs, dst in cps for src in srcs if src.endswith("/build/facet")]
    report(len(facet_copy) == 1 and facet_copy[0][0] == (build or {}).get("name"),
           "the runtime stage takes build/facet from the build stage", facet_copy)
    bindir = None
    if facet_copy:
        frm, src, dst = facet_copy[0]
        bindir = dest_dir(cps, src, dst)
        exe = f"{bindir}/facet" if bindir == dst.rstrip("/") else dst
        linked = any(re.search(rf"ln -s\S* {re.escape(exe)} /usr/local/bin/facet\b", r) for r in runs(final))
        report(exe == "/usr/local/bin/facet" or linked, f"/usr/local/bin/facet is the binary ({exe})")
    # nothing secret or heavy baked in: no key or token from the context in any
    # stage; no checkpoint in the image (the build stage's test fixtures stay there)
    secretish = r"\.pem$|(^|/)[^/]*-key[^/]*$|(^|/)token$|api[-_]?key"
    leaked = [src for s in stages for kw, frm, srcs, _ in copies(s) if frm is None for src in srcs
              if re.search(secretish, src)]
    report(not leaked, "no key or token copied from the build context", leaked)
    heavy = [src for kw, frm, srcs, _ in cps for src in srcs
             if re.search(r"\.safetensors$|\.gguf$|(^|/)models?(/|$)|fixtures|" + secretish, src)]
    report(not heavy, "no model, test fixture, key or token in the runtime stage (the model is mounted)", heavy)
    envs = [text for s in stages for _, kw, text in s["instrs"] if kw in ("ENV", "ARG")]
    report(not [e for e in envs if re.search(r"(TOKEN|API_KEY|SECRET|PASSWORD)\w*=", e)],
           "no credential in ENV or ARG")

    # the build stage
    if report(build is not None, "a build stage runs scripts/build"):
        text = " && ".join(runs(build))
        report("scripts/install-deps" in text and text.index("scripts/install-deps") < text.index("scripts/build"),
               "the build stage runs scripts/install-deps, then scripts/build (the README's steps)")
        copied = {src.strip("./").split("/")[0] for kw, frm, srcs, _ in copies(build) if frm is None for src in srcs}
        need = cmake_folders(a.repo) | {"scripts", "CMakeLists.txt"}
        report(need <= copied, "the build stage copies every folder CMakeLists.txt reads, and scripts/",
               f"missing {sorted(need - copied)}")

    modules = [src for kw, frm, srcs, _ in cps for src in srcs if re.search(r"libfacet_(cuda|nccl)\.so$", src)]
    if a.flavour == "cpu":
        report(build is not None and "-DFACET_CUDA=OFF" in " ".join(runs(build)), "the CPU build passes -DFACET_CUDA=OFF")
        report(not modules, "no CUDA or NCCL module in the CPU image", modules)
        report(not any("nvidia" in s["image"] or "cuda" in s["image"] for s in stages), "no CUDA base image")
        report(not any("cuda-libs.sh" in r for s in stages for r in runs(s)), "no CUDA libraries in the CPU image")
    else:
        cuda = [s for s in stages if re.fullmatch(r"(?:docker\.io/)?nvidia/cuda:13\.0\.\d+-devel-(ubuntu|debian)[\d.]+", s["image"])]
        report(len(cuda) == 1, "a stage FROM an nvidia/cuda 13.0 devel image", [s["image"] for s in stages])
        report(sorted(os.path.basename(m) for m in modules) == ["libfacet_cuda.so", "libfacet_nccl.so"],
               "the runtime stage has both modules, libfacet_cuda.so and libfacet_nccl.so", modules)
        dsts = {dest_dir(cps, src, dst) for kw, frm, srcs, dst in cps for src in srcs if src in modules}
        report(bindir is not None and dsts == {bindir},
               f"the modules sit next to the binary ({bindir}), where worker/backend.c looks", sorted(dsts))
        staging = [m.group(1) for s in stages for r in runs(s)
                   for m in [re.search(r"cuda-libs\.sh --copy (\S+) (.*)", r)] if m]
        mods_listed = all(re.search(r"cuda-libs\.sh --copy \S+ .*libfacet_cuda\.so.*libfacet_nccl\.so|"
                                    r"cuda-libs\.sh --copy \S+ .*libfacet_nccl\.so.*libfacet_cuda\.so", r)
                          for s in stages for r in runs(s) if "cuda-libs.sh" in r)
        report(len(staging) == 1 and mods_listed,
               "the build stage collects the modules' CUDA libraries with cuda-libs.sh --copy")
        libdir = next((dst.rstrip("/") for kw, frm, srcs, dst in cps for src in srcs
                       if staging and src.rstrip("/") == staging[0].rstrip("/")), None)
        report(libdir is not None, "the runtime stage copies what cuda-libs.sh collected", staging)
        report(libdir is not None and any(f"echo {libdir} >/etc/ld.so.conf.d/" in r and "ldconfig" in r for r in runs(final)),
               f"the loader finds them ({libdir} in /etc/ld.so.conf.d, ldconfig)")
        env = " ".join(text for _, kw, text in final["instrs"] if kw == "ENV")
        m = re.search(r"NVIDIA_DRIVER_CAPABILITIES=(\S+)", env)
        report(m is not None and "compute" in m.group(1).split(","),
               "NVIDIA_DRIVER_CAPABILITIES includes compute (the toolkit mounts only `utility` without it)")
        report("NVIDIA_VISIBLE_DEVICES" not in env, "NVIDIA_VISIBLE_DEVICES is left to the device plugin")
    finish()


# ---- packages --------------------------------------------------------------------------------------

def dpkg_status():
    """Installed packages: name -> {"priority", "essential", "depends": [[alternatives]], "provides"}."""
    pkgs, cur = {}, {}
    with open("/var/lib/dpkg/status") as f:
        text = f.read()
    for para in text.split("\n\n"):
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, val = line.partition(":")
                fields[key] = val.strip()
        if "Package" not in fields or "installed" not in fields.get("Status", "").split()[-1:]:
            continue
        deps = []
        for field in ("Pre-Depends", "Depends"):
            for group in filter(None, (g.strip() for g in fields.get(field, "").split(","))):
                deps.append([re.split(r"[\s(:]", alt.strip())[0] for alt in group.split("|")])
        cur = {"priority": fields.get("Priority", ""), "essential": fields.get("Essential") == "yes", "depends": deps,
               "provides": [re.split(r"[\s(]", p.strip())[0] for p in fields.get("Provides", "").split(",") if p.strip()]}
        pkgs[fields["Package"]] = cur
    return pkgs


def closure(roots, pkgs):
    """Packages roots pull in through Pre-Depends and Depends (on this machine:
    the first installed alternative, virtual packages through Provides)."""
    providers = {}
    for name, p in pkgs.items():
        for v in p["provides"]:
            providers.setdefault(v, []).append(name)
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen or n not in pkgs:
            continue
        seen.add(n)
        for alts in pkgs[n]["depends"]:
            pick = next((x for x in alts if x in pkgs), None) or next(
                (pr for x in alts for pr in providers.get(x, [])), None)
            if pick:
                todo.append(pick)
    return seen


def dpkg_files():
    """Every shared library path some installed package ships -> the package
    (read from dpkg's file lists: one `dpkg-query --search` per library is slow)."""
    files = {}
    info = "/var/lib/dpkg/info"
    for entry in os.listdir(info):
        if entry.endswith(".list"):
            pkg = entry[:-5].split(":")[0]
            with open(os.path.join(info, entry), errors="replace") as f:
                for line in f:
                    if ".so" in line:
                        files[line.rstrip("\n")] = pkg
    return files


def owner(path, files):
    """The Debian package that ships a library, under any of the names the
    /usr merge gives it (/lib or /usr/lib; the soname link or its target)."""
    real = os.path.realpath(path)
    for p in (path, real):
        for c in (p, "/usr" + p, p[4:] if p.startswith("/usr/") else p):
            if c in files:
                return files[c]
    return None


def ldd(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    missing = re.findall(r"^\s*(\S+) => not found", out, re.M)
    return dict(re.findall(r"^\s*(\S+) => (/\S+)", out, re.M)), missing


def needed(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def cmd_packages(a):
    stages = parse(a.file)
    listed = apt_packages(stages[-1])
    report(bool(listed), f"{a.file}: the runtime stage installs Debian packages", listed)
    pkgs = dpkg_status()
    base = closure([n for n, p in pkgs.items() if p["priority"] == "required" or p["essential"]], pkgs)
    unknown = [p for p in listed if p not in pkgs]
    report(not unknown, "every listed package is a Debian package installed here (so dpkg knows its files)", unknown)
    provided = closure(listed, pkgs)
    files = dpkg_files()
    required = {}  # package -> libraries needed directly
    for i, binary in enumerate([a.binary] + a.modules):
        name = os.path.basename(binary)
        resolved, missing = ldd(binary)
        report(not missing, f"ldd resolves every library {name} needs", missing)
        direct = set(needed(binary))
        foreign = []
        for soname, path in sorted(resolved.items()):
            pkg = owner(path, files)
            if pkg is None:
                foreign.append(soname)
                continue
            if soname in direct and pkg not in base:
                required.setdefault(pkg, []).append(f"{soname} ({name})")
        if i == 0:
            report(not foreign, f"every library {name} loads comes from a Debian package", foreign)
        else:
            print(f"   {name}: not from Debian, copied by cuda-libs.sh: {', '.join(foreign) or 'none'}")
        owners = {s: owner(p, files) for s, p in resolved.items()}
        uncovered = sorted(f"{s} ({o})" for s, o in owners.items() if o and o not in base and o not in provided)
        report(not uncovered, f"every Debian library {name} loads ({len(resolved) - len(foreign)}) comes from the "
               "listed packages, their dependencies or the base image", uncovered)
    for pkg, libs in sorted(required.items()):
        report(pkg in listed, f"{pkg} is installed in the runtime stage: {', '.join(libs)}")
    extra = sorted(set(listed) - set(required))
    report(not extra, "no extra package: each listed one provides a library the binaries need directly", extra)
    finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("lint")
    p.add_argument("file")
    p.add_argument("--flavour", choices=("cpu", "cuda"), required=True)
    p.add_argument("--repo", required=True)
    p = sub.add_parser("packages")
    p.add_argument("file")
    p.add_argument("binary")
    p.add_argument("modules", nargs="*")
    a = ap.parse_args()
    {"lint": cmd_lint, "packages": cmd_packages}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
