#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""decode-records.py [--json] TRACE_DIR [N] - sanity check of a trace directory (contracts.md section 1).

Reads meta.json, decodes every record of every cpu<N>.out in the byte order meta.json gives
(ABI v1, docs/abi.md), checks that each record is sane (event and type ids known,
event_size 24 for a free and >= 48 for an allocation, bytes_req > 0, bytes_alloc >= bytes_req,
sequence numbers increasing within a CPU, unique across CPUs and without holes unless the
kernel counted overruns, file sizes match meta.json),
names call sites from kallsyms and prints the first N records (default 5) of each CPU, plus the
records whose call site is a kmemtrace_selftest_* function.

With --json, the report goes to stderr and stdout gets one JSON object: "sane" (bool),
"problems" (count), "files" (per CPU file: file, cpu, records, allocs, frees) and "selftest"
(every kmemtrace_selftest_* record: seq, cpu, event, type, function, and req and alloc for an
allocation). tests/e2e.rs compares it with the kmemtrace crate's report of the same trace: an
independent decoder of the same bytes.

Exit codes: 0 sane, 1 insane records or a size mismatch, 2 usage or unreadable input.
This is a quick guest-tools test aid; the real decoder is the kmemtrace crate.
"""
import bisect
import json
import os
import struct
import sys

EVENTS = {0: "alloc", 1: "free"}
TYPES = {0: "kmalloc", 1: "cache", 2: "pages"}


def load_kallsyms(path):
    addrs, names = [], []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1].lower() in "tw":
                    addrs.append(int(parts[0], 16))
                    names.append(parts[2])
    except OSError:
        pass
    order = sorted(range(len(addrs)), key=addrs.__getitem__)
    return [addrs[i] for i in order], [names[i] for i in order]


def name_of(syms, addr):
    addrs, names = syms
    i = bisect.bisect_right(addrs, addr) - 1
    if i < 0 or not addrs[i]:
        return hex(addr)
    return "%s+%#x" % (names[i], addr - addrs[i])


def decode(data, bo):
    """Yields (offset, record dict) or raises ValueError naming the offset."""
    hdr = struct.Struct(bo + "BBHiQQ")
    alloc = struct.Struct(bo + "QQIi")
    off = 0
    while off < len(data):
        if len(data) - off < hdr.size:
            raise ValueError("offset %d: %d trailing bytes, not a record" % (off, len(data) - off))
        ev, ty, size, seq, site, ptr = hdr.unpack_from(data, off)
        rec = dict(event=ev, type=ty, size=size, seq=seq, site=site, ptr=ptr)
        if ev not in EVENTS or ty not in TYPES:
            raise ValueError("offset %d: unknown event %d / type %d" % (off, ev, ty))
        if ev == 1 and size < 24 or ev == 0 and size < 48 or off + size > len(data):
            raise ValueError("offset %d: bad event_size %d for %s" % (off, size, EVENTS[ev]))
        if ev == 0:
            req, got, gfp, node = alloc.unpack_from(data, off + 24)
            rec.update(req=req, alloc=got, gfp=gfp, node=node)
        yield off, rec
        off += size


def main():
    args = sys.argv[1:]
    as_json = args[:1] == ["--json"]
    if as_json:
        args = args[1:]
    if len(args) not in (1, 2):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    d = args[0]
    show = int(args[1]) if len(args) == 2 else 5
    stdout = sys.stdout
    if as_json:
        sys.stdout = sys.stderr
    files = []
    try:
        meta = json.load(open(os.path.join(d, "meta.json")))
    except (OSError, ValueError) as e:
        print("meta.json: %s" % e, file=sys.stderr)
        return 2
    bo = ">" if meta["byte_order"] == "big" else "<"
    syms = load_kallsyms(os.path.join(d, "kallsyms"))
    print("%s %s %s, %d symbols, total_overruns %d" % (meta["machine"], meta["kernel_release"],
          meta["byte_order"], len(syms[0]), meta["total_overruns"]))
    insane = 0
    seqs = []
    selftest = []
    for c in meta["cpus"]:
        data = open(os.path.join(d, c["file"]), "rb").read()
        if len(data) != c["bytes"]:
            print("%s: %d bytes, meta.json says %d" % (c["file"], len(data), c["bytes"]))
            insane += 1
        n = allocs = frees = bad = back = 0
        last = None
        try:
            for off, r in decode(data, bo):
                n += 1
                if r["event"] == 0:
                    allocs += 1
                    if r["req"] == 0 or r["alloc"] < r["req"]:
                        bad += 1
                        if bad <= 3:
                            print("  %s offset %d: req %d alloc %d" % (c["file"], off, r["req"],
                                                                       r["alloc"]))
                else:
                    frees += 1
                if last is not None and ((r["seq"] - last) & 0xffffffff) > 0x7fffffff:
                    back += 1
                last = r["seq"]
                seqs.append(r["seq"])
                # ppc64 ELFv1 text symbols carry a leading dot (".kmemtrace_selftest_pages").
                sym = name_of(syms, r["site"])
                if sym.startswith(".") and len(sym) > 1:
                    sym = sym[1:]
                if sym.startswith("kmemtrace_selftest_"):
                    selftest.append((r["seq"], c["cpu"], r, sym))
                if n <= show:
                    extra = (" req %d alloc %d gfp %#x node %d" % (r["req"], r["alloc"], r["gfp"],
                             r["node"]) if r["event"] == 0 else "")
                    print("  cpu%d seq %d %s/%s size %d ptr %#x site %s%s" % (
                        c["cpu"], r["seq"], EVENTS[r["event"]], TYPES[r["type"]], r["size"],
                        r["ptr"], sym, extra))
        except ValueError as e:
            print("  %s: %s" % (c["file"], e))
            insane += 1
        print("%s: %d bytes, %d records (%d alloc, %d free), %d insane allocs, "
              "%d seq steps backwards" % (c["file"], len(data), n, allocs, frees, bad, back))
        files.append(dict(file=c["file"], cpu=c["cpu"], records=n, allocs=allocs, frees=frees))
        insane += bad + back
    dups = len(seqs) - len(set(seqs))
    if dups:
        print("%d duplicate sequence numbers across CPUs" % dups)
        insane += 1
    # One counter for all CPUs: with every CPU's file read and nothing dropped by the kernel,
    # the sequence numbers form one unbroken run (what the collector lost would show as holes).
    if seqs:
        uniq = sorted(set(s & 0xffffffff for s in seqs))
        spread = max(b - a for a, b in zip(uniq, uniq[1:] + [uniq[0] + (1 << 32)]))
        holes = len(uniq) and ((1 << 32) - len(uniq) - (spread - 1))  # holes besides the wrap gap
        print("sequence numbers: %d records, %d missing from the run%s" % (
            len(seqs), holes, "" if not holes else
            " (total_overruns %d)" % meta["total_overruns"]))
        if holes and not meta["total_overruns"]:
            insane += 1
    if selftest:
        print("selftest records (%d):" % len(selftest))
        for seq, cpu, r, sym in sorted(selftest)[:40]:
            extra = " req %d alloc %d" % (r["req"], r["alloc"]) if r["event"] == 0 else ""
            print("  seq %d cpu%d %s/%s ptr %#x %s%s" % (seq, cpu, EVENTS[r["event"]],
                  TYPES[r["type"]], r["ptr"], sym, extra))
    print("sane" if not insane else "INSANE (%d problems)" % insane)
    if as_json:
        records = []
        for seq, cpu, r, sym in sorted(selftest):
            rec = dict(seq=seq, cpu=cpu, event=EVENTS[r["event"]], type=TYPES[r["type"]],
                       function=sym.split("+")[0])
            if r["event"] == 0:
                rec.update(req=r["req"], alloc=r["alloc"])
            records.append(rec)
        json.dump(dict(sane=not insane, problems=insane, files=files, selftest=records), stdout)
        stdout.write("\n")
    return 0 if not insane else 1


if __name__ == "__main__":
    sys.exit(main())
