#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Make each kernel version's tracer patches from the one tracer source in kernel/tracer/.

The tracer (mm/kmemtrace.c, its header, its selftest, its documentation and the few lines it
adds to MAINTAINERS, mm/Makefile, mm/Kconfig.debug, kernel-parameters.txt and the trace
documentation's index) is kept once, in kernel/tracer/, in the state after its last patch.
What differs between kernel versions is data, in kernel/patches/<version>/tracer.toml: a few
values (the page allocator's function names, a callback's arguments...) and where in that
version's files each inserted block goes. The patch boundaries are data too:
kernel/tracer/stages.toml names each patch's message, and each later patch's changes to the
tracer are kept as a diff that this script takes back to get the earlier states.

    kernel/mkseries.py check [VERSION...]   exit 1 when a committed patch differs from what
                                            this script makes (and show how)
    kernel/mkseries.py write [VERSION...]   make them and write them into kernel/patches/
    kernel/mkseries.py unpack DIR           write each patch's state of kernel/tracer/ (still
                                            with its @placeholders@) to DIR/1, DIR/2, ...
    kernel/mkseries.py pack DIR             the reverse: kernel/tracer/ from edited DIR/1...

To change what an earlier patch adds: unpack, edit DIR/<n> and every later DIR/<m> alike,
pack, write. The source of each version is its SOURCE's tarball (kmt setup installs it);
--tarball VERSION=PATH reads another copy.

Exit status: 0 done (check: everything matches), 1 check found a difference, 2 bad usage or
bad data (named on stderr).
"""

import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

KERNEL = Path(__file__).resolve().parent
TRACER = KERNEL / "tracer"
PATCHES = KERNEL / "patches"
PLACEHOLDER = re.compile(r"@([a-z][a-z0-9_]*)@")


class DataError(Exception):
    """Bad data in kernel/tracer/ or a version's tracer.toml, or a tool that failed."""


def read_source(version):
    """The key=value lines of kernel/patches/<version>/SOURCE."""
    values = {}
    for line in (PATCHES / version / "SOURCE").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def source_tarball(source):
    """The tarball of a SOURCE: installed in /usr/src, or, for a suite kmt fetches from, in
    kmt's cache (the entry whose kmt-source names the package and version)."""
    if "suite" not in source:
        return source["tarball"]
    root = os.environ.get("KMT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kmt"
    )
    for about in sorted(Path(root, "debs").glob("*/kmt-source")):
        text = about.read_text()
        if f"package={source['package']}\n" in text and f"version={source['version']}\n" in text:
            return str(about.parent / Path(source["tarball"]).name)
    return f"{root}/debs/*/{Path(source['tarball']).name}"


def load_toml(path):
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path}: {e}") from e


def tracer_versions():
    """Every version whose series has tracer patches."""
    return sorted(p.parent.name for p in PATCHES.glob("*/tracer.toml"))


# --- the tracer's states -------------------------------------------------------------------


def read_tree(root):
    """Every file under root (files/ and insert/), by its path relative to root."""
    tree = {}
    for sub in ("files", "insert"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                tree[str(path.relative_to(root))] = path.read_text()
    return tree


def write_tree(root, tree):
    for rel, text in tree.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_diff(old, new):
    """A unified diff (3 lines of context) from tree old to tree new, over the files both hold."""
    out = []
    for rel in sorted(new):
        if rel not in old or old[rel] == new[rel]:
            continue
        out.extend(
            difflib.unified_diff(
                old[rel].splitlines(keepends=True),
                new[rel].splitlines(keepends=True),
                f"a/{rel}",
                f"b/{rel}",
                n=3,
            )
        )
    for line in out:
        if not line.endswith("\n"):
            raise DataError("a tracer file does not end with a newline")
    return "".join(out)


HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def parse_diff(text, name):
    """[(path, [(new_start, old_lines, new_lines)])] of a diff written by make_diff."""
    files = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        if not lines[i].startswith("--- a/") or not lines[i + 1].startswith("+++ b/"):
            raise DataError(f"{name}: line {i + 1}: expected a '--- a/' file header")
        path = lines[i + 1][len("+++ b/") :].rstrip("\n")
        hunks = []
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            m = HUNK.match(lines[i])
            if not m:
                raise DataError(f"{name}: line {i + 1}: not a hunk header")
            old, new = [], []
            want_old, want_new = int(m.group(2) or 1), int(m.group(4) or 1)
            i += 1
            while len(old) < want_old or len(new) < want_new:
                if i == len(lines) or lines[i][:1] not in (" ", "-", "+"):
                    raise DataError(f"{name}: line {i + 1}: the hunk ends early")
                tag, body = lines[i][0], lines[i][1:]
                if tag != "+":
                    old.append(body)
                if tag != "-":
                    new.append(body)
                i += 1
            hunks.append((int(m.group(3)), old, new))
        files.append((path, hunks))
    return files


def unapply(tree, diff_text, name):
    """Tree before the change diff_text made; every hunk must match exactly, at its line."""
    tree = dict(tree)
    for path, hunks in parse_diff(diff_text, name):
        if path not in tree:
            raise DataError(f"{name}: {path} is not in the tracer")
        lines = tree[path].splitlines(keepends=True)
        shift = 0
        for new_start, old, new in hunks:
            at = (new_start - 1 if new else new_start) + shift
            if lines[at : at + len(new)] != new:
                raise DataError(
                    f"{name}: the hunk at line {new_start} of {path} does not match "
                    "the later state: did an edit of kernel/tracer/ skip this patch's diff?"
                )
            lines[at : at + len(new)] = old
            shift += len(old) - len(new)
        tree[path] = "".join(lines)
    return tree


def load_stages():
    stages = load_toml(TRACER / "stages.toml")["stage"]
    return stages


def stage_trees(stages):
    """The tracer's state (template form) after each stage, first to last."""
    trees = [read_tree(TRACER)]
    for stage in reversed(stages[1:]):
        tree = unapply(trees[0], (TRACER / stage["diff"]).read_text(), stage["diff"])
        for rel in stage.get("creates", []):
            if rel not in tree:
                raise DataError(f"stages.toml: {rel} is not in the tracer")
            del tree[rel]
        trees.insert(0, tree)
    return trees


# --- one version ---------------------------------------------------------------------------


def render(text, values, where):
    """Text with each @name@ replaced: a line that is only @name@ by the value's lines (none
    for an empty value), any other @name@ by the value as it is."""
    out = []
    for line in text.splitlines(keepends=True):
        whole = PLACEHOLDER.fullmatch(line.rstrip("\n"))
        if whole:
            value = lookup(values, whole.group(1), where)
            out.append(value if value.endswith("\n") or not value else value + "\n")
            continue
        out.append(PLACEHOLDER.sub(lambda m: lookup(values, m.group(1), where), line))
    return "".join(out)


def lookup(values, name, where):
    if name not in values:
        raise DataError(f"{where}: no value for @{name}@ in tracer.toml [values]")
    return values[name]


def insert_block(text, block, place, where):
    """text with block inserted before or after the one line place names."""
    (how, anchor), = place.items()
    lines = text.splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if line.rstrip("\n") == anchor]
    if len(hits) != 1 or how not in ("before", "after"):
        raise DataError(
            f"{where}: {how} = {anchor!r} must name exactly one line ({len(hits)} found)"
        )
    at = hits[0] + (1 if how == "after" else 0)
    return "".join(lines[:at]) + block + "".join(lines[at:])


def git(repo, *args, env=None):
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise DataError(f"git {' '.join(args)}: exit {result.returncode}: {result.stderr}")
    return result.stdout


def make_series(version, stages, trees, tarball, out):
    """Write version's tracer patches into out; return their file names."""
    data = load_toml(PATCHES / version / "tracer.toml")
    where = f"kernel/patches/{version}/tracer.toml"
    values, inserts = data.get("values", {}), data.get("insert", {})
    source = read_source(version)
    tarball = tarball or source_tarball(source)
    if not Path(tarball).is_file():
        raise DataError(
            f"{version}: no {tarball} ({source['package']} {source['version']}: "
            "kmt setup installs or fetches it; or pass --tarball)"
        )
    work = Path(tempfile.mkdtemp(prefix=f"mkseries-{version}-"))
    try:
        top = source["topdir"]
        wanted = [f"{top}/.gitattributes"] + [f"{top}/{rel}" for rel in inserts]
        subprocess.run(["tar", "-xJf", tarball, "-C", str(work), *wanted], check=True)
        repo = work / top
        git(repo, "init", "-q")
        for key, value in (("core.abbrev", "9"), ("gc.auto", "0")):
            git(repo, "config", key, value)
        pristine = {rel: (repo / rel).read_text() for rel in inserts}
        author = load_toml(TRACER / "stages.toml")["author"]
        name, email = re.fullmatch(r"(.*) <(.*)>", author).groups()
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email}
        env.update({"GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email})
        git(repo, "add", "-A", "-f", ".")
        git(repo, "commit", "-q", "-m", "base", env=env)
        dates = data.get("dates", [stage["date"] for stage in stages])
        if len(dates) != len(stages):
            raise DataError(f"{where}: dates names {len(dates)} patches, not {len(stages)}")
        for stage, tree, date in zip(stages, trees, dates):
            for rel, text in tree.items():
                kind, path = rel.split("/", 1)
                text = render(text, values, f"{where} ({rel})")
                if kind == "insert":
                    if path not in inserts:
                        raise DataError(f"{where}: no [insert] place for {path}")
                    text = insert_block(pristine[path], text, inserts[path], f"{where}: {path}")
                (repo / path).parent.mkdir(parents=True, exist_ok=True)
                (repo / path).write_text(text)
            git(repo, "add", "-A", "-f", ".")
            dated = {**env, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
            git(repo, "commit", "-q", "-F", str(TRACER / stage["message"]), env=dated)
        names = git(
            repo,
            "format-patch",
            "-N",
            "--zero-commit",
            "--no-signature",
            f"--start-number={data['first']}",
            "-o",
            str(out),
            "HEAD~%d..HEAD" % len(stages),
        ).split()
        return [Path(n).name for n in names]
    finally:
        shutil.rmtree(work)


# --- commands ------------------------------------------------------------------------------


def cmd_make(versions, tarballs, write):
    stages = load_stages()
    trees = stage_trees(stages)
    differ = False
    for version in versions:
        with tempfile.TemporaryDirectory() as out:
            names = make_series(version, stages, trees, tarballs.get(version), Path(out))
            series = (PATCHES / version / "series").read_text().split("\n")
            for name in names:
                made = (Path(out) / name).read_text()
                committed = PATCHES / version / name
                if name not in series:
                    print(f"{version}: {name} is not in kernel/patches/{version}/series")
                    differ = True
                if write:
                    committed.write_text(made)
                    continue
                old = committed.read_text() if committed.exists() else ""
                if old != made:
                    differ = True
                    sys.stdout.writelines(
                        difflib.unified_diff(
                            old.splitlines(keepends=True),
                            made.splitlines(keepends=True),
                            f"kernel/patches/{version}/{name} (committed)",
                            f"kernel/patches/{version}/{name} (made)",
                        )
                    )
            print(f"{version}: {len(names)} tracer patches {'written' if write else 'checked'}")
    if differ and not write:
        print("the committed series differ from kernel/tracer/: run kernel/mkseries.py write")
        return 1
    return 0


def cmd_unpack(target):
    stages = load_stages()
    for n, tree in enumerate(stage_trees(stages), 1):
        write_tree(target / str(n), tree)
    print(f"{len(stages)} states of kernel/tracer/ in {target}/1..{len(stages)}")
    return 0


def cmd_pack(source):
    stages = load_stages()
    trees = [read_tree(source / str(n)) for n in range(1, len(stages) + 1)]
    for n in range(1, len(stages)):
        gone = [rel for rel in trees[n - 1] if rel not in trees[n]]
        if gone:
            raise DataError(f"{source}/{n + 1}: a later patch cannot remove {gone[0]}")
        created = sorted(rel for rel in trees[n] if rel not in trees[n - 1])
        if created != sorted(stages[n].get("creates", [])):
            raise DataError(
                f"{source}/{n + 1} creates {created}: say so in stages.toml's creates"
            )
        (TRACER / stages[n]["diff"]).write_text(make_diff(trees[n - 1], trees[n]))
    for sub in ("files", "insert"):
        shutil.rmtree(TRACER / sub, ignore_errors=True)
    write_tree(TRACER, trees[-1])
    if stage_trees(stages) != trees:
        raise DataError("packing did not give back the states it was given")
    print(f"kernel/tracer/ packed from {source}")
    return 0


def main(argv):
    args = argv[1:]
    tarballs = {}
    while "--tarball" in args:
        i = args.index("--tarball")
        version, _, path = args[i + 1].partition("=") if i + 1 < len(args) else ("", "", "")
        if not path:
            print("--tarball takes VERSION=PATH", file=sys.stderr)
            return 2
        tarballs[version] = path
        del args[i : i + 2]
    if not args or args[0] not in ("check", "write", "unpack", "pack"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if args[0] in ("unpack", "pack"):
            if len(args) != 2:
                print(f"usage: {argv[0]} {args[0]} DIR", file=sys.stderr)
                return 2
            return (cmd_unpack if args[0] == "unpack" else cmd_pack)(Path(args[1]))
        versions = args[1:] or tracer_versions()
        for version in versions:
            if not (PATCHES / version / "tracer.toml").is_file():
                print(f"no kernel/patches/{version}/tracer.toml", file=sys.stderr)
                return 2
        return cmd_make(versions, tarballs, args[0] == "write")
    except (DataError, OSError, subprocess.CalledProcessError, KeyError) as e:
        print(f"mkseries: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
