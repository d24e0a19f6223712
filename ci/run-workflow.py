#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Runs jobs of ci/github-actions.yml here, each in a fresh Debian 12 root made by debootstrap.

What GitHub would do with a job, done on this machine: a new root (the job's `container:`), a
clean clone of the committed tree, the `run:` steps in order with the workflow's, job's and
step's environment, `${{ }}` expressions, `$GITHUB_OUTPUT`, `$GITHUB_ENV`, `$GITHUB_PATH`,
`$GITHUB_STEP_SUMMARY`, `if:` and the failure rule. The `uses:` steps cannot run here (no
GitHub, no node); each known action is replaced by what it does (ci/README.md lists them), and an
unknown one is an error. Artifacts and caches pass between the jobs of one invocation as they
would between the jobs of one workflow run.

  ci/run-workflow.py build 'e2e:pair=6.12-slub,arch=x86_64' 'cross-arch:pair=6.12-slub'

Exit status: 0 every job passed, 1 a job failed, 2 bad usage (unknown job or matrix entry,
unsupported expression or action).
"""

import argparse
import glob
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKSPACE = "/__w/kmt/kmt"  # where GitHub puts a container job's checkout
# What ${{ github.workspace }} gives in a container job: the runner host's path, not the
# container's (actions/runner#2058); $GITHUB_WORKSPACE inside the container is WORKSPACE.
HOST_WORKSPACE = "/home/runner/work/kmt/kmt"
HOME = "/github/home"  # a container job's HOME on GitHub


class Usage(Exception):
    """Bad usage: exit 2."""


def log(msg):
    print(f"run-workflow: {msg}", flush=True)


# --- expressions: the subset of GitHub's language the workflow uses --------------------------

TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!(),])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))"
)


def tokens(text):
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Usage(f"expression {text!r}: cannot read at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class Expr:
    """Evaluates one `${{ }}` expression against a context (dicts of dicts)."""

    def __init__(self, text, ctx):
        self.toks, self.i, self.ctx, self.text = tokens(text), 0, ctx, text

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise Usage(f"expression {self.text!r}: expected {value!r}")
        self.i += 1
        return tok

    def run(self):
        v = self.orr()
        if self.i != len(self.toks):
            raise Usage(f"expression {self.text!r}: trailing {self.peek()[1]!r}")
        return v

    def orr(self):
        v = self.andd()
        while self.peek()[1] == "||":
            self.take()
            r = self.andd()
            v = v or r
        return v

    def andd(self):
        v = self.cmp()
        while self.peek()[1] == "&&":
            self.take()
            r = self.cmp()
            v = v and r
        return v

    def cmp(self):
        v = self.unary()
        while self.peek()[1] in ("==", "!="):
            op = self.take()[1]
            r = self.unary()
            same = str(v).lower() == str(r).lower()
            v = same if op == "==" else not same
        return v

    def unary(self):
        if self.peek()[1] == "!":
            self.take()
            return not self.unary()
        if self.peek()[1] == "(":
            self.take()
            v = self.orr()
            self.take(")")
            return v
        kind, val = self.take()
        if kind == "str":
            return val[1:-1].replace("''", "'")
        if kind == "num":
            return float(val)
        if kind != "name":
            raise Usage(f"expression {self.text!r}: unexpected {val!r}")
        if val in ("true", "false"):
            return val == "true"
        if self.peek()[1] == "(":
            self.take()
            args = []
            while self.peek()[1] != ")":
                args.append(self.orr())
                if self.peek()[1] == ",":
                    self.take()
            self.take(")")
            return self.call(val, args)
        v = self.ctx
        for part in val.split("."):
            if not isinstance(v, dict):
                return ""
            v = v.get(part, "")
        return v

    def call(self, name, args):
        status = self.ctx["__status"]
        if name == "always":
            return True
        if name == "success":
            return status == "success"
        if name == "failure":
            return status == "failure"
        if name == "cancelled":
            return False
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: str(args[int(m.group(1)) + 1]), args[0])
        if name == "hashFiles":
            return hash_files(self.ctx["github"]["workspace_host"], args)
        raise Usage(f"expression {self.text!r}: function {name}() is not supported here")


def hash_files(root, patterns):
    """GitHub's hashFiles(): a sha256 over the sha256 of each matching file, in path order."""
    files = set()
    for p in patterns:
        for f in glob.glob(os.path.join(root, p), recursive=True):
            if os.path.isfile(f):
                files.add(f)
    if not files:
        return ""
    outer = hashlib.sha256()
    for f in sorted(files):
        with open(f, "rb") as fh:
            outer.update(hashlib.sha256(fh.read()).digest())
    return outer.hexdigest()


def substitute(text, ctx):
    """Replaces every `${{ expr }}` in a string (or in the strings of a dict or list)."""
    if isinstance(text, dict):
        return {k: substitute(v, ctx) for k, v in text.items()}
    if isinstance(text, list):
        return [substitute(v, ctx) for v in text]
    if not isinstance(text, str):
        return text

    def one(m):
        v = Expr(m.group(1), ctx).run()
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        if isinstance(v, (dict, list)):
            return json.dumps(v)
        return str(v)

    return re.sub(r"\$\{\{(.*?)\}\}", one, text)


def condition(text, ctx):
    """An `if:`: with no status function in it, GitHub adds success() &&."""
    if text is None:
        return ctx["__status"] == "success"
    text = str(text).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not re.search(r"\b(always|success|failure|cancelled)\(", text):
        text = f"success() && ({text})"
    return bool(Expr(text, ctx).run())


# --- matrices ---------------------------------------------------------------------------------

def combinations(strategy):
    """The matrix entries of a job, as GitHub expands them (product, then exclude, include)."""
    matrix = dict((strategy or {}).get("matrix") or {})
    include = matrix.pop("include", [])
    exclude = matrix.pop("exclude", [])
    if not matrix and not include:
        return [{}]
    keys = list(matrix)
    out = [dict(zip(keys, vals)) for vals in itertools.product(*(matrix[k] for k in keys))]
    out = [c for c in out if not any(all(c.get(k) == v for k, v in e.items()) for e in exclude)]
    out.extend(include)
    return out


def entry_matches(entry, selector):
    """`pair=6.12-slub,arch=x86_64` against an entry; an object matches on its first value
    (`pair=6.12-slub` picks the pair whose tag is 6.12-slub)."""
    for part in filter(None, selector.split(",")):
        key, _, want = part.partition("=")
        got = entry.get(key)
        if isinstance(got, dict):
            got = next(iter(got.values()), None)
        if str(got) != want:
            return False
    return True


def describe(entry):
    return ",".join(
        f"{k}={next(iter(v.values())) if isinstance(v, dict) else v}" for k, v in entry.items()
    )


# --- the root ---------------------------------------------------------------------------------

def debootstrap_tarball(cache):
    """A Debian 12 minbase root as debootstrap makes it (what `debian:bookworm` is), made once
    and kept as a tarball: each job unpacks a fresh copy."""
    tarball = os.path.join(cache, "bookworm-minbase-root.tar")
    if os.path.exists(tarball):
        return tarball
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    os.makedirs(cache, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kmt-dbs-", dir=cache)
    log(f"debootstrap --variant=minbase bookworm (once, kept as {tarball})")
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", work, "http://deb.debian.org/debian"],
        check=True, stdout=subprocess.DEVNULL,
    )
    subprocess.run(["tar", "-C", work, "-cf", tarball + ".part", "."], check=True)
    shutil.rmtree(work, ignore_errors=True)
    os.rename(tarball + ".part", tarball)
    return tarball


DEBIAN_SOURCES = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


class Root:
    """A fresh root for one job, with /proc, /sys, /dev and the host's Rust toolchain mounted."""

    def __init__(self, tarball, scratch):
        self.path = tempfile.mkdtemp(prefix="kmt-ci-root-", dir=scratch)
        self.mounts = []
        log(f"new root {self.path}")
        subprocess.run(["tar", "-C", self.path, "-xf", tarball], check=True)
        # mkdtemp's 0700 (and the tarball's own "." from one) would lock out every non-root
        # user of the root: _apt, man, and the workflow's own non-root steps.
        os.chmod(self.path, 0o755)
        shutil.copy("/etc/resolv.conf", os.path.join(self.path, "etc/resolv.conf"))
        # The debian:bookworm image's own apt sources: debootstrap writes only `bookworm main`,
        # and the kernel sources kmt pins (linux-source-6.12, 6.1's newest) are in
        # bookworm-security, as in the image the workflow's jobs run in.
        sources = os.path.join(self.path, "etc/apt/sources.list.d/debian.sources")
        with open(sources, "w") as f:
            f.write(DEBIAN_SOURCES)
        legacy = os.path.join(self.path, "etc/apt/sources.list")
        if os.path.exists(legacy):
            os.remove(legacy)
        # This machine reaches the registries through a TLS proxy whose CA is a local one: the
        # root gets it where ca-certificates (installed by the first step) picks it up.
        local_ca = "/usr/local/share/ca-certificates"
        if os.path.isdir(local_ca):
            shutil.copytree(local_ca, self.inside(local_ca), dirs_exist_ok=True)
        for src, dst, opts in [
            ("proc", "proc", ["-t", "proc"]),
            ("/sys", "sys", ["--rbind"]),
            ("/dev", "dev", ["--rbind"]),
        ]:
            self.mount(src, dst, opts)
        os.makedirs(self.inside(HOME), exist_ok=True)
        os.makedirs(self.inside(WORKSPACE), exist_ok=True)

    def inside(self, p):
        return os.path.join(self.path, p.lstrip("/"))

    def mount(self, src, dst, opts):
        target = self.inside(dst)
        if os.path.isdir(src) or src == "proc":
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
        subprocess.run(["mount", *opts, src, target], check=True)
        self.mounts.append(target)

    def bind_ro(self, src, dst):
        self.mount(src, dst, ["--bind"])
        subprocess.run(["mount", "-o", "remount,bind,ro", self.inside(dst)], check=True)

    def close(self, keep):
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-R", "-l", m], check=False)
        if not keep:
            shutil.rmtree(self.path, ignore_errors=True)


# --- actions, as what they do -----------------------------------------------------------------

def action_checkout(job, step, inputs):
    ws = job.root.inside(WORKSPACE)
    shutil.rmtree(ws)
    subprocess.run(["git", "clone", "-q", "--no-local", job.source, ws], check=True)
    subprocess.run(["git", "-C", ws, "checkout", "-q", job.rev], check=True)


def action_rust_toolchain(job, step, inputs):
    """dtolnay/rust-toolchain@V: the host's rustup toolchains (none can be downloaded here),
    read-only, with V as the default and the components asked for checked."""
    version = step["uses"].split("@", 1)[1]
    rustup = os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
    cargo_bin = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "bin")
    # At the host's own path: rustup's toolchain links may be absolute.
    job.root.bind_ro(rustup, rustup)
    job.root.bind_ro(cargo_bin, HOME + "/.cargo/bin")
    job.env["RUSTUP_HOME"] = rustup
    job.env["RUSTUP_TOOLCHAIN"] = version
    job.path.insert(0, HOME + "/.cargo/bin")
    have = subprocess.run(["rustup", "+" + version, "component", "list", "--installed"],
                          capture_output=True, text=True, check=True).stdout
    for c in filter(None, (x.strip() for x in inputs.get("components", "").split(","))):
        if not re.search(rf"^{re.escape(c)}-", have, re.M):
            raise Usage(f"{step['uses']}: the host's toolchain {version} lacks {c}")


def action_install(job, step, inputs):
    """taiki-e/install-action@nextest: the host's cargo-nextest binary."""
    tool = step["uses"].split("@", 1)[1]
    if tool != "nextest":
        raise Usage(f"{step['uses']}: only nextest is known here")
    exe = shutil.which("cargo-nextest")
    if exe is None:
        raise Usage("cargo-nextest is not installed on this machine")
    job.root.bind_ro(exe, "/usr/local/bin/cargo-nextest")


def action_rust_cache(job, step, inputs):
    log("  (Swatinem/rust-cache: nothing cached between runs here; the build is cold)")


def action_upload(job, step, inputs):
    dest = os.path.join(job.artifacts, inputs["name"])
    ws = job.root.inside(WORKSPACE)
    n = 0
    for pattern in filter(None, (p.strip() for p in inputs["path"].splitlines())):
        for f in glob.glob(os.path.join(ws, pattern), recursive=True):
            rel = os.path.relpath(f, ws)
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            if os.path.isdir(f):
                shutil.copytree(f, os.path.join(dest, rel), dirs_exist_ok=True, symlinks=True)
            else:
                shutil.copy2(f, os.path.join(dest, rel))
            n += 1
    log(f"  artifact {inputs['name']}: {n} path(s)")


def action_download(job, step, inputs):
    src = os.path.join(job.artifacts, inputs["name"])
    if not os.path.isdir(src):
        raise RuntimeError(f"artifact {inputs['name']} was not uploaded by an earlier job")
    shutil.copytree(src, job.root.inside(WORKSPACE), dirs_exist_ok=True, symlinks=True)


def cache_dir(job, key):
    return os.path.join(job.store, hashlib.sha256(key.encode()).hexdigest()[:32])


def action_cache(job, step, inputs):
    """actions/cache and actions/cache/restore: an exact key, else the newest entry whose key
    starts with a restore key; actions/cache saves at the end of a job that passed, unless it
    hit exactly (GitHub's entries are immutable)."""
    key, path = inputs["key"], inputs["path"]
    target = os.path.join(job.root.inside(WORKSPACE), path)
    hit = None
    if os.path.isdir(cache_dir(job, key)):
        hit = key
    else:
        for prefix in filter(None, (p.strip() for p in inputs.get("restore-keys", "").splitlines())):
            best = None
            for d in glob.glob(os.path.join(job.store, "*", "key")):
                with open(d) as fh:
                    k = fh.read()
                if k.startswith(prefix) and (best is None or os.path.getmtime(d) > best[0]):
                    best = (os.path.getmtime(d), k)
            if best:
                hit = best[1]
                break
    if hit:
        log(f"  cache hit{' (restore key)' if hit != key else ''}: {hit}")
        os.makedirs(target, exist_ok=True)
        subprocess.run(["cp", "-a", "--reflink=auto", cache_dir(job, hit) + "/data/.", target],
                       check=True)
    else:
        log(f"  cache miss: {key}")
    if "/restore@" not in step["uses"] and hit != key:
        job.post.append((key, target))


def save_caches(job):
    for key, target in job.post:
        if not os.path.isdir(target):
            continue
        d = cache_dir(job, key)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        subprocess.run(["cp", "-a", "--reflink=auto", target, os.path.join(d, "data")], check=True)
        with open(os.path.join(d, "key"), "w") as fh:
            fh.write(key)
        log(f"cache saved: {key}")


ACTIONS = {
    "actions/checkout": action_checkout,
    "dtolnay/rust-toolchain": action_rust_toolchain,
    "taiki-e/install-action": action_install,
    "Swatinem/rust-cache": action_rust_cache,
    "actions/upload-artifact": action_upload,
    "actions/download-artifact": action_download,
    "actions/cache": action_cache,
    "actions/cache/restore": action_cache,
}


# --- jobs -------------------------------------------------------------------------------------

class Job:
    def __init__(self, args, name, spec, entry, workflow):
        self.name, self.spec, self.entry, self.workflow = name, spec, entry, workflow
        self.source, self.rev = args.source, args.rev
        self.artifacts, self.store, self.keep = args.artifacts, args.store, args.keep
        self.tarball, self.scratch = args.tarball, args.scratch
        self.env, self.path, self.post, self.outputs = {}, [], [], {}

    def context(self, status):
        return {
            "__status": status,
            "matrix": self.entry,
            "github": {
                "workspace": HOST_WORKSPACE,
                "workspace_host": self.root.inside(WORKSPACE),
                "ref": "refs/heads/main",
                "event_name": "push",
            },
            "runner": {"os": "Linux", "temp": "/__w/_temp"},
            "steps": {k: {"outputs": v} for k, v in self.outputs.items()},
            "env": self.env,
        }

    def run(self):
        container = self.spec.get("container")
        image = container.get("image") if isinstance(container, dict) else container
        if image != "debian:bookworm":
            raise Usage(f"job {self.name}: runs in {image!r}; only debian:bookworm is made here")
        self.root = Root(self.tarball, self.scratch)
        status = "success"
        summary = self.root.inside("/__w/_temp/summary.md")
        os.makedirs(os.path.dirname(summary), exist_ok=True)
        try:
            base = self.context(status)
            self.env.update(substitute(self.workflow.get("env") or {}, base))
            self.env.update(substitute(self.spec.get("env") or {}, base))
            for i, step in enumerate(self.spec["steps"]):
                ctx = self.context(status)
                label = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
                label = substitute(label, ctx)
                if not condition(step.get("if"), ctx):
                    log(f"- skip: {label}")
                    continue
                log(f"- {label}")
                t = time.monotonic()
                try:
                    ok = self.step(step, ctx, i)
                except Usage:
                    raise
                except Exception as e:  # an action that cannot do its work fails the step
                    log(f"  failed: {e}")
                    ok = False
                log(f"  {'ok' if ok else 'FAILED'} in {time.monotonic() - t:.0f} s")
                if not ok:
                    status = "failure"
            if status == "success":
                save_caches(self)
        finally:
            if os.path.exists(summary) and os.path.getsize(summary):
                dest = os.path.join(self.artifacts, f"summary-{self.label()}.md")
                shutil.copy(summary, dest)
                log(f"job summary: {dest}")
            self.root.close(self.keep)
        return status == "success"

    def label(self):
        return self.name + (f"-{describe(self.entry)}" if self.entry else "").replace(",", "-")

    def step(self, step, ctx, index):
        if "uses" in step:
            name = step["uses"].split("@", 1)[0]
            if name not in ACTIONS:
                raise Usage(f"action {step['uses']} has no local stand-in")
            ACTIONS[name](self, step, substitute(step.get("with") or {}, ctx))
            return True
        tmp = self.root.inside("/__w/_temp")
        files = {k: os.path.join(tmp, f"{k}-{index}") for k in ("output", "env", "path")}
        for f in files.values():
            open(f, "w").close()
        script = substitute(step["run"], ctx)
        with open(os.path.join(tmp, f"step-{index}.sh"), "w") as fh:
            fh.write(script)
        env = {
            "HOME": HOME,
            "PATH": ":".join(self.path + ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                           "/usr/bin", "/sbin", "/bin"]),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": WORKSPACE,
            "GITHUB_OUTPUT": f"/__w/_temp/output-{index}",
            "GITHUB_ENV": f"/__w/_temp/env-{index}",
            "GITHUB_PATH": f"/__w/_temp/path-{index}",
            "GITHUB_STEP_SUMMARY": "/__w/_temp/summary.md",
            "RUNNER_TEMP": "/__w/_temp",
            **self.env,
            **substitute(step.get("env") or {}, ctx),
        }
        cmd = ["chroot", self.root.path, "/usr/bin/env", "-i",
               *[f"{k}={v}" for k, v in env.items()],
               "/bin/bash", "-c", f"cd {WORKSPACE} && exec bash -e /__w/_temp/step-{index}.sh"]
        rc = subprocess.run(cmd).returncode
        sid = step.get("id")
        if sid:
            self.outputs[sid] = parse_kv(files["output"])
        self.env.update(parse_kv(files["env"]))
        with open(files["path"]) as fh:
            self.path[:0] = [line.strip() for line in fh if line.strip()]
        return rc == 0


def parse_kv(path):
    out = {}
    with open(path) as fh:
        lines = fh.read().splitlines()
    it = iter(lines)
    for line in it:
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, delim = line.split("<<", 1)
            val = []
            for nxt in it:
                if nxt == delim:
                    break
                val.append(nxt)
            out[key] = "\n".join(val)
        elif "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def order(jobs, wanted):
    """The wanted jobs in an order that respects `needs:`."""
    done, out = set(), []

    def visit(name, stack=()):
        if name in done:
            return
        if name in stack:
            raise Usage(f"needs: cycle through {name}")
        needs = jobs[name].get("needs") or []
        for n in [needs] if isinstance(needs, str) else needs:
            if n in wanted:
                visit(n, stack + (name,))
        done.add(name)
        out.append(name)

    for w in wanted:
        visit(w)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("jobs", nargs="+", help="JOB or JOB:KEY=VALUE,... (a matrix entry)")
    ap.add_argument("--workflow", default=os.path.join(HERE, "github-actions.yml"))
    ap.add_argument("--source", default=REPO, help="the repository to clone (default: this one)")
    ap.add_argument("--rev", default="HEAD", help="the commit to check out (default: HEAD)")
    ap.add_argument("--cache", default="/var/cache/kmt-ci",
                    help="the debootstrap tarball and the actions/cache store")
    ap.add_argument("--scratch", default="/var/tmp", help="where the roots are made")
    ap.add_argument("--out", default=None, help="artifacts and job summaries (default: a new dir)")
    ap.add_argument("--keep", action="store_true", help="keep each job's root")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run-workflow: chroot and mount need root: sudo python3 ci/run-workflow.py ...",
              file=sys.stderr)
        return 2
    with open(args.workflow) as fh:
        workflow = yaml.safe_load(fh)
    jobs = workflow["jobs"]
    args.rev = subprocess.run(["git", "-C", args.source, "rev-parse", args.rev],
                              capture_output=True, text=True, check=True).stdout.strip()
    args.out = args.out or tempfile.mkdtemp(prefix="kmt-workflow-", dir=args.scratch)
    args.artifacts = os.path.join(args.out, "artifacts")
    args.store = os.path.join(args.cache, "actions-cache")
    os.makedirs(args.artifacts, exist_ok=True)
    os.makedirs(args.store, exist_ok=True)
    selected = {}
    for j in args.jobs:
        name, _, sel = j.partition(":")
        if name not in jobs:
            raise Usage(f"no job {name!r}: the workflow has {', '.join(jobs)}")
        entries = [e for e in combinations(jobs[name].get("strategy")) if entry_matches(e, sel)]
        if not entries:
            raise Usage(f"{j}: no matrix entry matches")
        selected.setdefault(name, []).extend(entries)
    args.tarball = debootstrap_tarball(args.cache)
    results = []
    for name in order(jobs, list(selected)):
        for entry in selected[name]:
            job = Job(args, name, jobs[name], entry, workflow)
            log(f"== job {job.label()} at {args.rev[:12]}")
            t = time.monotonic()
            ok = job.run()
            results.append((job.label(), ok, time.monotonic() - t))
            log(f"== job {job.label()}: {'passed' if ok else 'FAILED'} "
                f"in {time.monotonic() - t:.0f} s")
    print()
    for label, ok, secs in results:
        print(f"{'passed' if ok else 'FAILED'}  {secs:6.0f} s  {label}")
    print(f"artifacts and summaries: {args.out}")
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Usage as e:
        print(f"run-workflow: {e}", file=sys.stderr)
        sys.exit(2)
