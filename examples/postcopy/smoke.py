#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Smoke test of the post-copy example: smoke.py POSTCOPY_SRC POSTCOPY_DST

1. bad options are refused with exit status 2;
2. a 16 MiB migration: postcopy-src on port 0 (the port is read from its
   first line), postcopy-dst against it; dst must print the checksum match
   line and exit 0, src must exit 0 after printing its statistics;
3. malformed sources (written here) make postcopy-dst exit 1 with a clear
   reason, without a crash or a hang;
4. malformed destinations make postcopy-src exit 1 likewise.

Nothing sleeps: every wait is for an event (a line, a connection, an exit),
bounded by a generous timeout that only a hang would reach.
"""
import os
import re
import select
import socket
import struct
import subprocess
import sys

WAIT = 90  # seconds; only a hang gets near it
PAGE = os.sysconf("SC_PAGESIZE")
MAGIC = b"UFFDPCPY"
REQUEST, DATA, END = 1, 2, 3

failures = []


def check(cond, what, proc_out=""):
    if cond:
        print(f"ok: {what}")
    else:
        print(f"FAIL: {what}\n{proc_out}")
        failures.append(what)


def clean(err):
    """No sanitizer report, no signal message."""
    return "Sanitizer" not in err and "runtime error" not in err


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=WAIT)
    return p.returncode, p.stdout, p.stderr


def read_line(proc):
    """The first line of proc's stdout, waiting at most WAIT seconds."""
    fd = proc.stdout.fileno()
    buf = b""
    while not buf.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], WAIT)
        if not ready:
            raise RuntimeError("no line from postcopy-src")
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf.decode()


def finish(proc):
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out.decode(), err.decode()


def test_options(src, dst):
    rc, _, err = run([src, "--size", "0"])
    check(rc == 2 and "bad value" in err, "postcopy-src --size 0 refused", err)
    rc, _, err = run([src, "--port", "65536"])
    check(rc == 2 and "bad value" in err, "postcopy-src --port 65536 refused",
          err)
    rc, _, err = run([dst, "--port", "x"])
    check(rc == 2 and "bad value" in err, "postcopy-dst --port x refused", err)
    rc, _, err = run([src, "--image", "/nonexistent/image"])
    check(rc == 1 and "/nonexistent/image" in err,
          "postcopy-src with a missing image file fails clearly", err)


def start_src(src, size_mib):
    proc = subprocess.Popen([src, "--port", "0", "--size", str(size_mib),
                             "--seed", "7"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    line = read_line(proc)
    m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"unexpected first line from postcopy-src: {line!r}")
    return proc, int(m.group(1))


def test_migration(src, dst):
    proc, port = start_src(src, 16)
    try:
        rc, out, err = run([dst, "--port", str(port)])
        print(out, end="")
        check(rc == 0 and re.search(r"^checksum match: 0x[0-9a-f]{16}$", out,
                                    re.M) is not None and clean(err),
              "postcopy-dst restored 16 MiB and the checksum matches",
              out + err)
        check(re.search(r"^faults served: [1-9]", out, re.M) is not None,
              "the workload faulted and the loop served it", out)
        src_rc, src_out, src_err = finish(proc)
        print(src_out, end="")
        check(src_rc == 0 and "pushed" in src_out and clean(src_err),
              "postcopy-src exited cleanly with its statistics",
              src_out + src_err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hello(size, page=PAGE, magic=MAGIC, version=1):
    return magic + struct.pack("<IIQQ", version, page, size, 0)


def msg(kind, flags, offset, length):
    return struct.pack("<IIQQ", kind, flags, offset, length)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def fake_source(dst, name, script, expect):
    """Runs postcopy-dst against a source that sends script(sock)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(WAIT)
    proc = subprocess.Popen([dst, "--port", str(lsock.getsockname()[1]),
                             "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        conn, _ = lsock.accept()
        conn.settimeout(WAIT)
        script(conn)
        # keep the connection open: dst must stop because of what it got
        rc, out, err = finish(proc)
        conn.close()
    finally:
        lsock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(rc == 1 and expect in err and clean(err),
          f"postcopy-dst refuses a source that {name}", out + err)


def handshake(size):
    def start(conn):
        conn.sendall(hello(size))
        return recv_exact(conn, 16)
    return start


def test_bad_sources(dst):
    mib = 1 << 20
    start = handshake(mib)

    fake_source(dst, "has the wrong magic",
                lambda c: c.sendall(hello(mib, magic=b"NOTMAGIC")),
                "wrong magic")
    fake_source(dst, "speaks version 2",
                lambda c: c.sendall(hello(mib, version=2)), "version 2")
    fake_source(dst, "has a 3-byte image",
                lambda c: c.sendall(hello(3)), "image size 3")

    def out_of_range(c):
        start(c)
        c.sendall(msg(DATA, 0, mib, PAGE) + b"\0" * PAGE)
    fake_source(dst, "sends a page outside the image", out_of_range,
                "outside the image")

    def twice(c):
        start(c)
        c.sendall((msg(DATA, 0, 0, PAGE) + b"\1" * PAGE) * 2)
    fake_source(dst, "sends a page twice", twice, "sent twice")

    def early_end(c):
        start(c)
        c.sendall(msg(DATA, 0, 0, PAGE) + b"\1" * PAGE + msg(END, 0, 0, 0))
    fake_source(dst, "ends too early", early_end, "END after 1 of")

    def bad_type(c):
        start(c)
        c.sendall(msg(REQUEST, 0, 0, PAGE))
    fake_source(dst, "sends a REQUEST", bad_type, "unexpected message type")

    def truncated(c):
        start(c)
        c.sendall(msg(DATA, 0, 0, 2 * PAGE) + b"\1" * PAGE)
        c.shutdown(socket.SHUT_WR)
    fake_source(dst, "closes in the middle of a message", truncated,
                "connection closed")


def fake_destination(src, name, script, expect):
    """Runs postcopy-src (1 MiB) against a destination doing script."""
    proc, port = start_src(src, 1)
    try:
        with socket.create_connection(("127.0.0.1", port), WAIT) as conn:
            got = recv_exact(conn, 32)
            script(conn, got)
            rc, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(rc == 1 and expect in err and clean(err),
          f"postcopy-src refuses a destination that {name}", out + err)


def test_bad_destinations(src):
    ready = MAGIC + struct.pack("<II", 1, 0)
    fake_destination(src, "answers with version 9",
                     lambda c, h: c.sendall(MAGIC + struct.pack("<II", 9, 0)),
                     "version 9")
    fake_destination(src, "asks for a misaligned range",
                     lambda c, h: c.sendall(ready + msg(REQUEST, 1, 100,
                                                        PAGE)),
                     "not page aligned")
    fake_destination(src, "asks beyond the image",
                     lambda c, h: c.sendall(ready + msg(REQUEST, 1,
                                                        1 << 30, PAGE)),
                     "outside the image")
    fake_destination(src, "sends unknown flags",
                     lambda c, h: c.sendall(ready + msg(REQUEST, 6, 0, PAGE)),
                     "unknown flags")

    def hang_up(c, h):
        c.sendall(ready)
        c.close()
    fake_destination(src, "hangs up before the end", hang_up, "destination")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: smoke.py POSTCOPY_SRC POSTCOPY_DST")
    src, dst = sys.argv[1], sys.argv[2]
    test_options(src, dst)
    test_migration(src, dst)
    test_bad_sources(dst)
    test_bad_destinations(src)
    if failures:
        print(f"{len(failures)} check(s) failed: {', '.join(failures)}")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
