#!/usr/bin/env python3
"""Helpers of bench/run.sh.

  report.py frame SIZE FILE      writes one gRPC-framed bench.Msg whose body is
                                 SIZE bytes (the h2load request body)
  report.py pct LOGFILE          p50 and p99 (us) of an h2load --log-file
  report.py report --raw RAW --meta META --out OUT.md
                                 the markdown tables from run.sh's records
                                 (also writes OUT's directory's
                                 profile-W1-*.txt from the callgrind files)

raw.tsv lines: workload, server, client, key, value.  Keys: count, rate,
mbps, p50, p99, client_cpu (one per timed run); server_cpu, rss_kb, instr,
syscalls, cg_files, conns, ready, alive, conn_kb, error (one each).
"""
import collections
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys

SERVERS = ["mrpc-event", "mrpc-blocking", "grpc++", "floor"]
CLIENTS = ["mrpc", "grpc++"]
BASE = "grpc++"
WORKLOADS = {
    "W1": "W1: unary, 16-byte message, h2load 10 connections x 10 streams",
    "W2": "W2: unary, 1 KiB request echoed back, h2load 10 x 10",
    "W3a": "W3a: server streaming, 1 KiB messages, one call",
    "W3b": "W3b: server streaming, 64 KiB messages, one call",
    "W4": "W4: bidi ping-pong, 16-byte messages, one stream",
    "W5": "W5: unary, 16-byte message, h2load 100 connections x 10 streams",
    "W6": "W6: idle connections (HTTP/2 handshake done, then idle)",
}


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def cmd_frame(size, path):
    size = int(size)
    msg = b"\x0a" + varint(size) + b"x" * size if size else b""
    with open(path, "wb") as f:
        f.write(b"\x00" + struct.pack(">I", len(msg)) + msg)


def pct(values, p):
    """Nearest-rank percentile of a sorted list."""
    if not values:
        return 0.0
    k = max(1, min(len(values), int(-(-p * len(values) // 100))))
    return values[k - 1]


def cmd_pct(path):
    lat = []
    with open(path) as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[1] == "200":
                lat.append(float(cols[2]))
    lat.sort()
    print("%.1f %.1f" % (pct(lat, 50), pct(lat, 99)))


# ---- report -----------------------------------------------------------------


class Data:
    def __init__(self, raw):
        self.v = collections.defaultdict(list)
        self.errors = collections.defaultdict(list)
        with open(raw) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 5:
                    continue
                w, s, c, k, val = parts
                if k == "error":
                    self.errors[(w, s)].append("%s: %s" % (c, val))
                else:
                    self.v[(w, s, c, k)].append(val)

    def num(self, w, s, c, k, how="median"):
        vals = []
        for x in self.v.get((w, s, c, k), []):
            try:
                vals.append(float(x))
            except ValueError:
                pass
        if not vals:
            return None
        return statistics.median(vals) if how == "median" else vals[-1]

    def raw(self, w, s, c, k):
        vals = self.v.get((w, s, c, k))
        return vals[-1] if vals else None

    def has(self, w):
        return any(k[0] == w for k in self.v) or any(k[0] == w for k in self.errors)


def fmt(x, digits=None):
    if x is None:
        return "–"
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    s = "{:,.{d}f}".format(x, d=digits)
    return s


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(x):
    return "–" if x is None else "%.2f×" % x


def mib(kb):
    return None if kb is None else kb / 1024.0


def table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return "\n".join(out)


def cpu_cell(d, w, s, c):
    """server CPU per RPC, with the kernel's share."""
    cpu = d.num(w, s, c, "server_cpu", "last")
    sys_pct = d.num(w, s, c, "server_sys_pct", "last")
    if cpu is None:
        return "–"
    return fmt(cpu) + ("" if sys_pct is None else " (%.0f%% sys)" % sys_pct)


def err_mark(d, w, s):
    return " (ERR)" if d.errors.get((w, s)) else ""


def unary_table(d, w):
    base = d.num(w, BASE, "h2load", "rate")
    rows = []
    for s in SERVERS:
        rate = d.num(w, s, "h2load", "rate")
        cpu = d.num(w, s, "h2load", "server_cpu", "last")
        rows.append([
            s + err_mark(d, w, s),
            fmt(rate),
            fmt_ratio(ratio(rate, base)),
            fmt(1e6 / cpu) if cpu else "–",
            cpu_cell(d, w, s, "h2load"),
            fmt(d.num(w, s, "h2load", "instr", "last"), 0),
            fmt(d.num(w, s, "h2load", "syscalls", "last")),
            fmt(mib(d.num(w, s, "h2load", "rss_kb", "last")), 1),
            fmt(d.num(w, s, "h2load", "p50")),
            fmt(d.num(w, s, "h2load", "p99")),
        ])
    return table(["server", "req/s", "vs grpc++", "req/s per core by CPU",
                  "server CPU µs/RPC",
                  "instr/RPC", "syscalls/RPC", "peak RSS MiB", "p50 µs",
                  "p99 µs"], rows)


def client_table(d, w, stream):
    base = d.num(w, BASE, BASE, "rate")
    rows = []
    for s in SERVERS:
        for c in CLIENTS:
            rate = d.num(w, s, c, "rate")
            extra = c == "mrpc"
            row = [s + err_mark(d, w, s), c]
            if stream:
                row += [fmt(d.num(w, s, c, "mbps")), fmt(rate)]
            else:
                row += [fmt(rate)]
            row.append(fmt_ratio(ratio(rate, base)))
            if not stream:
                row += [fmt(d.num(w, s, c, "p50")), fmt(d.num(w, s, c, "p99"))]
            row += [
                cpu_cell(d, w, s, c),
                fmt(d.num(w, s, c, "client_cpu")),
                fmt(d.num(w, s, c, "instr", "last"), 0) if extra else "″",
                fmt(d.num(w, s, c, "syscalls", "last")) if extra else "″",
                fmt(mib(d.num(w, s, "-", "rss_kb", "last")), 1) if extra else "″",
            ]
            rows.append(row)
    unit = "msg" if stream else "RT"
    head = ["server", "client"]
    head += ["MB/s", "msg/s"] if stream else ["round trips/s"]
    head += ["vs grpc++/grpc++"]
    if not stream:
        head += ["p50 µs", "p99 µs"]
    head += ["server CPU µs/%s" % unit, "client CPU µs/%s" % unit,
             "instr/%s" % unit, "syscalls/%s" % unit, "peak RSS MiB"]
    return table(head, rows)


def idle_table(d):
    rows = []
    for s in SERVERS:
        rows.append([
            s + err_mark(d, "W6", s),
            fmt(d.num("W6", s, "-", "conns", "last"), 0),
            fmt(d.num("W6", s, "-", "ready", "last"), 0),
            fmt(d.num("W6", s, "-", "alive", "last"), 0),
            fmt(d.num("W6", s, "-", "conn_kb", "last"), 1),
            fmt(mib(d.num("W6", s, "-", "rss_kb", "last")), 1),
        ])
    return table(["server", "connections", "set up", "answer PING after idle",
                  "RSS per idle connection KiB", "peak RSS MiB"], rows)


def verdict(ok):
    return "–" if ok is None else ("met" if ok else "**not met**")


def targets(d):
    """Part 2's targets against this run, for mrpc-event (and -blocking)."""
    rows = []

    def add(name, val, ok, how):
        rows.append([name, val, verdict(ok), how])

    for s in ("mrpc-event", "mrpc-blocking"):
        i, f, g = (d.num("W1", x, "h2load", "instr", "last")
                   for x in (s, "floor", BASE))
        rf, rg = ratio(i, f), ratio(i, g)
        add("W1 instr/RPC ≤ 1.3× floor, ≤ ⅓ grpc++ (%s)" % s,
            "%s× floor, %s× grpc++" % (fmt(rf, 2), fmt(rg, 2)),
            None if rf is None or rg is None else rf <= 1.3 and rg <= 1 / 3,
            "callgrind, server process")
        i, f, g = (d.num("W1", x, "h2load", "server_cpu", "last")
                   for x in (s, "floor", BASE))
        rf, rg = ratio(i, f), ratio(i, g)
        add("W1 server CPU/RPC ≤ 1.3× floor, ≤ ⅓ grpc++ (%s)" % s,
            "%s× floor, %s× grpc++" % (fmt(rf, 2), fmt(rg, 2)),
            None if rf is None or rg is None else rf <= 1.3 and rg <= 1 / 3,
            "utime+stime over the timed runs")
        r = ratio(d.num("W1", s, "h2load", "rate"), d.num("W1", BASE, "h2load", "rate"))
        cap = ratio(d.num("W1", BASE, "h2load", "server_cpu", "last"),
                    d.num("W1", s, "h2load", "server_cpu", "last"))
        add("W1 req/s per server core (10×10) ≥ 3× grpc++ (%s)" % s,
            "%s× measured; %s× by CPU/RPC" % (fmt(r, 2), fmt(cap, 2)),
            None if r is None else r >= 3,
            "server pinned to one core; h2load on the other")
        for c in CLIENTS:
            mb = d.num("W3b", s, c, "mbps")
            add("W3b 64 KiB streaming ≥ 1.5 GB/s (%s, %s client)" % (s, c),
                "%s MB/s" % fmt(mb), None if mb is None else mb >= 1500,
                "message body bytes; 1 GB = 10⁹ B")
        for c in CLIENTS:
            p, f = d.num("W4", s, c, "p50"), d.num("W4", "floor", c, "p50")
            r = ratio(p, f)
            add("W4 ping-pong p50 ≤ 1.3× floor (%s, %s client)" % (s, c),
                "%s µs vs %s µs: %s×" % (fmt(p), fmt(f), fmt(r, 2)),
                None if r is None else r <= 1.3, "same client on both")
        kb = d.num("W6", s, "-", "conn_kb", "last")
        add("idle connection ≤ 64 KiB (%s)" % s, "%s KiB" % fmt(kb, 1),
            None if kb is None else kb <= 64, "server RSS growth / connections")
        n, alive = (d.num("W6", s, "-", k, "last") for k in ("conns", "alive"))
        add("10,000 idle connections work (%s)" % s,
            "%s of %s answer" % (fmt(alive, 0), fmt(n, 0)),
            None if n is None or n < 10000 else alive == n,
            "every one answers a PING after idling")
    for w in ("W3a", "W3b", "W4"):
        m, g = d.num(w, BASE, "mrpc", "rate"), d.num(w, BASE, BASE, "rate")
        r = ratio(m, g)
        add("our client vs grpc++ server ≥ grpc++ client (%s)" % w,
            "%s×" % fmt(r, 2), None if r is None else r >= 1,
            "mrpc_client rate / grpc_client rate")
    return table(["target (part 2)", "this run", "status", "how"], rows)


LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(<\s+|\*\s+)?(.*?)"
                  r"(?:\s+\((\d[\d,]*)x\))?(?:\s+\[([^\[\]]*/[^\[\]]*|\?\?\?)\])?\s*$")


def split_fn(name):
    """"file:function" -> (file, function); "???:f" -> ("???", f)."""
    head, sep, rest = name.partition(":")
    if sep and (head == "???" or "/" in head or "." in head):
        return head, rest
    return "", name


def guess_obj(path, fn, known):
    """callgrind_annotate leaves out [object] on some lines (inlined code of
    another file): take the object the same function has elsewhere, or guess
    from the glibc source path."""
    if fn in known:
        return known[fn]
    if path.startswith("./elf/"):
        return "ld-linux-x86-64.so.2"
    if path.startswith("./"):
        return "libc.so.6"
    return "?"


def annotate(path, inclusive=False):
    """{(function, object): Ir} from callgrind_annotate."""
    cmd = ["callgrind_annotate", "--threshold=100", "--auto=no"]
    if inclusive:
        cmd.append("--inclusive=yes")
    out = subprocess.run(cmd + [path], capture_output=True, text=True,
                         check=True).stdout
    rows = []
    body = False
    for line in out.splitlines():
        if "file:function" in line:
            body = True
            continue
        if not body:
            continue
        if not line.strip() or line.startswith("---"):
            if rows:
                break  # the end of the function list
            continue
        m = LINE.match(line)
        if not m:
            continue
        f, fn = split_fn(m.group(3))
        rows.append((int(m.group(1).replace(",", "")), f, fn,
                     os.path.basename(m.group(5) or "")))
    known = {fn: o for _, _, fn, o in rows if o}
    res = {}
    for ir, f, fn, o in rows:
        key = (fn, o or guess_obj(f, fn, known))
        res[key] = res.get(key, 0) + ir
    return res


def callers(path):
    """{function: its most expensive caller} from --tree=caller, to name
    the functions of stripped libraries (nghttp2's internal ones)."""
    try:
        out = subprocess.run(["callgrind_annotate", "--threshold=100",
                              "--auto=no", "--tree=caller", path],
                             capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, OSError):
        return {}, collections.Counter()
    best, res, ncalls = [], {}, 0
    calls = collections.Counter()
    for line in out.splitlines():
        m = LINE.match(line)
        if not m:
            best, ncalls = [], 0
            continue
        kind = (m.group(2) or "").strip()
        _, fn = split_fn(m.group(3))
        if kind == "<":
            best.append((int(m.group(1).replace(",", "")), fn))
            ncalls += int((m.group(4) or "0").replace(",", ""))
        elif kind == "*":
            if best:
                res[fn] = max(best)[1]
            calls[fn] += ncalls
            best, ncalls = [], 0
    return res, calls


def obj_name(o):
    if o in ("???", "?", ""):
        return "(unknown)"
    return re.sub(r"\.so[.\d]*$", "", o)


def per_rpc_profile(d, w, s, c):
    files = d.raw(w, s, c, "cg_files")
    if not files or not shutil.which("callgrind_annotate"):
        return None
    f1, f2, n1, n2 = files.split()
    n = int(n2) - int(n1)
    try:
        a1, a2 = annotate(f1), annotate(f2)
        i1, i2 = annotate(f1, True), annotate(f2, True)
    except (subprocess.CalledProcessError, OSError):
        return None
    who, calls2 = callers(f2)
    _, calls1 = callers(f1)
    ncalls = {fn: (calls2[fn] - calls1.get(fn, 0)) / n for fn in calls2}

    def label(fn):
        seen = set()
        name = fn
        while fn.startswith("0x") and fn in who and fn not in seen:
            seen.add(fn)
            fn = who[fn]
        return name if fn == name else "%s (internal, via %s)" % (name, fn)

    a1 = {(label(fn), o): v for (fn, o), v in a1.items()}
    a2 = {(label(fn), o): v for (fn, o), v in a2.items()}
    excl = {k: (a2.get(k, 0) - a1.get(k, 0)) / n for k in set(a1) | set(a2)}
    incl = {k: (i2.get(k, 0) - i1.get(k, 0)) / n for k in set(i1) | set(i2)}
    objs = collections.Counter()
    for (fn, o), v in excl.items():
        objs[obj_name(o)] += v
    return excl, incl, objs, ncalls


def profile_section(d, outdir):
    out = []
    lines = []
    objs_by_server = {}
    for s in SERVERS:
        p = per_rpc_profile(d, "W1", s, "h2load")
        if not p:
            continue
        excl, incl, objs, ncalls = p
        objs_by_server[s] = objs
        path = os.path.relpath(os.path.join(outdir, "profile-W1-%s.txt" % s))
        with open(path, "w") as f:
            f.write("# W1 %s: server instructions per RPC (callgrind, "
                    "difference of two runs / difference of counts)\n" % s)
            f.write("\n## by object\n")
            for o, v in objs.most_common():
                if abs(v) >= 1:
                    f.write("%12.0f  %s\n" % (v, o))
            f.write("\n## calls per RPC\n")
            for fn, v in sorted(ncalls.items(), key=lambda kv: -kv[1]):
                if v >= 0.5:
                    f.write("%12.1f  %s\n" % (v, fn))
            f.write("\n## exclusive, by function\n")
            for (fn, o), v in sorted(excl.items(), key=lambda kv: -kv[1]):
                if abs(v) >= 1:
                    f.write("%12.0f  %s [%s]\n" % (v, fn, o))
            f.write("\n## inclusive, by function\n")
            for (fn, o), v in sorted(incl.items(), key=lambda kv: -kv[1]):
                if abs(v) >= 1:
                    f.write("%12.0f  %s [%s]\n" % (v, fn, o))
        if s == "mrpc-event":
            lines.append("Top functions of the mrpc-event server per W1 RPC "
                         "(exclusive instructions; full lists in "
                         "`%s`):\n" % path)
            rows = []
            total = sum(excl.values())
            for (fn, o), v in sorted(excl.items(), key=lambda kv: -kv[1])[:25]:
                rows.append([fn.replace("|", "\\|"), obj_name(o), fmt(v, 0),
                             "%.1f%%" % (100 * v / total if total else 0)])
            lines.append(table(["function", "object", "instr/RPC", "share"], rows))
            alloc = [(fn, ncalls.get(fn, 0)) for fn in
                     ("malloc", "calloc", "realloc", "free", "__vfprintf_internal",
                      "nghttp2_session_mem_recv", "nghttp2_session_mem_send",
                      "protobuf_c_message_pack", "protobuf_c_message_unpack")]
            lines.append("")
            lines.append("Calls per RPC in that server: " + ", ".join(
                "%s %.1f" % (fn, v) for fn, v in alloc) + ".")
    if objs_by_server:
        names = []
        for objs in objs_by_server.values():
            for o, v in objs.most_common():
                if v >= 50 and o not in names:
                    names.append(o)
        rows = []
        for o in names:
            rows.append([o] + [fmt(objs_by_server[s].get(o), 0) if s in objs_by_server else "–"
                               for s in SERVERS])
        rows.append(["**total**"] + [fmt(sum(objs_by_server[s].values()), 0)
                                     if s in objs_by_server else "–" for s in SERVERS])
        out.append("W1 server instructions per RPC by object (callgrind):\n")
        out.append(table(["object"] + SERVERS, rows))
        out.append("")
    out += lines
    return "\n".join(out)


def cmd_report(raw, meta, outpath):
    d = Data(raw)
    m = {}
    with open(meta) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            m[k] = v
    o = ["# libminirpc benchmark results", ""]
    if m.get("smoke") == "1":
        o += ["**Smoke run (`make bench-smoke`): tiny counts, one run each; "
              "the figures mean nothing.**", ""]
    o += ["- command: `%s`" % m.get("command", "?"),
          "- date: %s" % m.get("date", "?"),
          "- machine: %s, %s cores, %s" % (m.get("cpu", "?"), m.get("cores", "?"),
                                           m.get("kernel", "?")),
          "- pinning: %s" % m.get("pinning", "?"),
          "- versions: %s" % m.get("versions", "?"),
          "- %s timed runs per figure (median), each about %s s; bench took %s"
          % (m.get("reps", "?"), m.get("secs", "?"), m.get("elapsed", "?")),
          "- load average (1/5/15 min) at start: %s, at end: %s"
          % (m.get("load_start", "?"), m.get("load_end", "?")),
          "",
          "Rates are medians; \"vs grpc++\" divides by the grpc++ server's rate "
          "(W3/W4: grpc++ server with the grpc++ client) of the same run.  "
          "Server CPU is utime+stime of the server process over the timed runs "
          "per RPC/message (its kernel share in brackets); \"req/s per core by "
          "CPU\" is 10⁶ / that, what one core could serve when the load "
          "generator, not the server, is the limit.  instr and syscalls are "
          "per RPC/message, server "
          "process only, measured with h2load (W1, W2, W5) or the mrpc client "
          "(W3, W4; ″ = see the row above).  RSS is the server's VmHWM.  "
          "h2load counts HTTP 200s; the gRPC status is checked by the clients "
          "and by `make bench-smoke`.", ""]
    def head(w):
        busy = d.num(w, "-", "-", "busy_pct", "last")
        others = [float(v) for (w2, _, _, k), vals in d.v.items()
                  if w2 == w and k == "other_pct" for v in vals]
        notes = []
        if busy is not None:
            notes.append("the machine was %d%% busy with other processes "
                         "as it began" % busy)
        if others:
            notes.append("they took at most %d%% of it during a timed run "
                         "(median %d%%)" % (max(others), statistics.median(others)))
        note = "\n\n(Other load: %s.)" % "; ".join(notes) if notes else ""
        return "## " + WORKLOADS[w] + note

    for w in ("W1", "W2", "W5"):
        if d.has(w):
            o += [head(w), "", unary_table(d, w), ""]
    for w in ("W3a", "W3b"):
        if d.has(w):
            o += [head(w), "", client_table(d, w, True), ""]
    if d.has("W4"):
        o += [head("W4"), "", client_table(d, "W4", False), ""]
    if d.has("W6"):
        o += [head("W6"), "", idle_table(d), ""]
    o += ["## Targets of part 2 (issue 6), this run", "", targets(d), ""]
    prof = profile_section(d, os.path.dirname(os.path.abspath(outpath)))
    if prof:
        o += ["## Where the instructions go (W1)", "", prof, ""]
    if d.errors:
        o += ["## Errors", ""]
        for (w, s), msgs in sorted(d.errors.items()):
            for msg in msgs:
                o.append("- %s %s %s" % (w, s, msg))
        o.append("")
    with open(outpath, "w") as f:
        f.write("\n".join(o))


def main(argv):
    if len(argv) == 4 and argv[1] == "frame":
        cmd_frame(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "pct":
        cmd_pct(argv[2])
    elif len(argv) == 8 and argv[1] == "report":
        args = dict(zip(argv[2::2], argv[3::2]))
        cmd_report(args["--raw"], args["--meta"], args["--out"])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
