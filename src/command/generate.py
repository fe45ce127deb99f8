#!/usr/bin/env python3
"""Generate keyway's command table (src/command/commands.txt) from Redis's own
`COMMAND` reply.

keyway routes each command by the metadata Redis publishes about it (arity,
flags, ACL categories, key specs, tips). Rather than hand-writing that table,
this script asks a real redis-server and writes one line per command and per
subcommand, sorted, so that regenerating with the same Redis version gives a
byte-identical file.

Usage (from the repository root):

    # start a throwaway redis-server on a free port and query it
    python3 src/command/generate.py --out src/command/commands.txt
    # or query a server that is already running
    python3 src/command/generate.py --host 127.0.0.1 --port 6379 --out ...

Python 3 standard library only: a tiny RESP2 reader over a socket.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- RESP reader


class Resp:
    """Reads RESP2 (and the RESP3 types, should a server send them) values."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"("):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError("server error: " + rest.decode())
        if kind == b":":
            return int(rest)
        if kind in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if kind == b"%":
            # Flatten maps so callers see the RESP2 shape either way.
            out = []
            for _ in range(int(rest)):
                out.append(self.read())
                out.append(self.read())
            return out
        if kind == b"_":
            return None
        if kind == b"#":
            return rest == b"t"
        if kind == b",":
            return float(rest)
        raise RuntimeError("unexpected RESP type byte %r" % kind)

    def command(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.read()


# ------------------------------------------------------------ formatting


def pairs(flat):
    """RESP2 flat [k1, v1, k2, v2, ...] -> dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def joined(items):
    """Comma-joined, '-' when empty, so every field is one whitespace token."""
    items = [str(i) for i in items]
    for i in items:
        if not i or any(c in i for c in " \t,;="):
            raise ValueError("cannot encode %r in the table" % i)
    return ",".join(items) if items else "-"


def acl_category(name):
    """`@read` -> `read`: the table stores ACL categories without the `@`."""
    if not name.startswith("@"):
        raise ValueError("ACL category without '@': %r" % name)
    return name[1:]


def key_spec(raw):
    """One key spec as `flags;begin_search;find_keys`.

    begin_search: index=POS | keyword=KEYWORD,STARTFROM | unknown
    find_keys:    range=LASTKEY,STEP,LIMIT | keynum=KEYNUMIDX,FIRSTKEY,STEP | unknown
    """
    spec = pairs(raw)
    flags = joined(spec.get("flags") or [])
    bs = pairs(spec["begin_search"])
    bs_spec = pairs(bs.get("spec") or [])
    if bs["type"] == "index":
        begin = "index=%d" % bs_spec["index"]
    elif bs["type"] == "keyword":
        begin = "keyword=%s,%d" % (joined([bs_spec["keyword"]]), bs_spec["startfrom"])
    else:
        begin = "unknown"
    fk = pairs(spec["find_keys"])
    fk_spec = pairs(fk.get("spec") or [])
    if fk["type"] == "range":
        find = "range=%d,%d,%d" % (fk_spec["lastkey"], fk_spec["keystep"], fk_spec["limit"])
    elif fk["type"] == "keynum":
        find = "keynum=%d,%d,%d" % (
            fk_spec["keynumidx"],
            fk_spec["firstkey"],
            fk_spec["keystep"],
        )
    else:
        find = "unknown"
    return "%s;%s;%s" % (flags, begin, find)


def lines_for(entry, out):
    """Appends the line of one COMMAND entry, then those of its subcommands."""
    name, arity, flags, first, last, step = entry[:6]
    categories = entry[6] if len(entry) > 6 else []
    tips = entry[7] if len(entry) > 7 else []
    specs = entry[8] if len(entry) > 8 else []
    subs = entry[9] if len(entry) > 9 else []
    fields = [
        name.lower(),
        str(arity),
        str(first),
        str(last),
        str(step),
        joined(sorted(flags)),
        joined(sorted(acl_category(c) for c in categories)),
        joined(sorted(tips)),
    ]
    fields += [key_spec(s) for s in specs]
    out.append(" ".join(fields))
    for sub in subs or []:
        lines_for(sub, out)


# --------------------------------------------------------------- server


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection((host, port), timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", help="query this running server instead of starting one")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--redis-server", default="redis-server", help="binary to start")
    ap.add_argument("--out", help="output file (default: stdout)")
    args = ap.parse_args()

    proc = tmp = None
    host, port = args.host, args.port
    if host is None:
        # A throwaway server: free port, no persistence, its own directory.
        tmp = tempfile.mkdtemp(prefix="keyway-gen-")
        host, port = "127.0.0.1", free_port()
        proc = subprocess.Popen(
            [args.redis_server, "--port", str(port), "--bind", host, "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
    try:
        resp = Resp(connect(host, port))
        info = pairs(resp.command("HELLO", "2"))  # RESP2: key specs as flat arrays
        version = info.get("version", "unknown")
        reply = resp.command("COMMAND")
        count = resp.command("COMMAND", "COUNT")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    lines = []
    for entry in reply:
        lines_for(entry, lines)
    lines.sort()
    top = sum(1 for l in lines if "|" not in l.split(" ", 1)[0])
    if top != count:
        sys.exit("COMMAND returned %d commands, COMMAND COUNT says %d" % (top, count))

    header = [
        "# keyway command table. GENERATED, do not edit: regenerate with",
        "#   python3 src/command/generate.py --out src/command/commands.txt",
        "# source: redis %s COMMAND; %d commands, %d subcommands"
        % (version, top, len(lines) - top),
        "# fields: name arity first last step flags acl_categories tips key_spec...",
        "#   flags, acl_categories, tips: comma-separated, '-' when empty",
        "#   acl_categories: without '@', as COMMAND reports them (implied ones included)",
        "#   key_spec: flags;begin_search;find_keys",
        "#     begin_search: index=POS | keyword=KEYWORD,STARTFROM | unknown",
        "#     find_keys: range=LASTKEY,STEP,LIMIT | keynum=KEYNUMIDX,FIRSTKEY,STEP | unknown",
    ]
    text = "\n".join(header + lines) + "\n"
    if args.out:
        with open(args.out, "w", newline="\n") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
