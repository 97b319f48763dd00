#!/usr/bin/env python3
"""Runs the quick start's commands as the book shows them and compares what they print.

The chapter (docs/src/quick-start.md) marks its blocks with an HTML comment on the line
before the fence:

    <!-- qs: run -->        a ```sh block, run in one bash session (variables carry over)
    <!-- qs: start -->      a ```sh block that starts the demo; it runs in the background
                            until the next `stop`, and what it printed is compared
    <!-- qs: stop -->       a ```sh block that stops the demo (Ctrl-C in the book)
    <!-- qs: psql -->       a ```sql block, run with psql on the demo's database

A marker may name a mode, `embedded` (no DATABASE_URL, not root) or `url` (DATABASE_URL,
root, a container, CI): `<!-- qs: run url -->` runs only in that mode; unnamed, in both. When
the next fence after a marked block is a ```text block, the block's output must match it
after masking what differs on every run (ids, times, tokens, ports, folders). A block whose
output the book does not show must still exit 0.

`cargo run -p tenancy-demo [cargo options] -- ARGS` is run as the demo binary built with
every strategy (`--demo`), with `--strategy` set from the cargo features the command names,
which is what a build with only those features does; everything else runs as written.

A block marked `cleanup` (with `url`: `<!-- qs: run url cleanup -->`) also runs before the
first block, its failures ignored, so that a second run starts from what the first left.
`--record` writes what each compared block printed into the chapter's ```text blocks
(tokens as `<TOKEN>`, the folder as /home/you/tenancy), for the author of the chapter.

usage: quickstart.py --mode embedded|url --demo PATH [--chapter FILE] [--record]
"""

import argparse
import atexit
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!--\s*qs:\s*(run|start|stop|psql)((?:\s+\w+)*)\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)")

MASKS = [
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<ID>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:\d{2})?)?"), "<TIME>"),
    (re.compile(r"^date: .*$", re.M), "date: <DATE>"),
    (re.compile(r"<[A-Z_]*TOKEN>|tnc_[0-9a-f]{64}"), "<TOKEN>"),
    (re.compile(r"(127\.0\.0\.1|localhost):\d+"), r"\1:<PORT>"),
    (re.compile(r"\S*/\.tenancy-demo"), "<DIR>/.tenancy-demo"),
    (re.compile(r"tenancy_test_[0-9a-f]+|tenancy_qs_\w+?(?=_|\b)"), "<DB>"),
]


def mask(text):
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return [line for line in lines if line]


def blocks(chapter):
    """(kind, modes, language, code, expected or None, line, span of the text) per marked block."""
    lines = open(chapter, encoding="utf-8").read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        kind, modes = m.group(1), m.group(2).split()
        start = i + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        fence = FENCE.match(lines[start]) if start < len(lines) else None
        if not fence:
            sys.exit(f"{chapter}:{i + 1}: a qs marker must be followed by a code block")
        end = start + 1
        while not lines[end].startswith("```"):
            end += 1
        code = "\n".join(lines[start + 1 : end])
        expected = None
        k = None
        j = end + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        if j < len(lines) and lines[j].startswith("```text"):
            k = j + 1
            while not lines[k].startswith("```"):
                k += 1
            expected = "\n".join(lines[j + 1 : k])
        span = (j, k) if expected is not None else None
        out.append((kind, modes, fence.group(1), code, expected, i + 1, span))
        i = end + 1
    return out


CARGO_RUN = re.compile(r"cargo run -p tenancy-demo((?:\s+--?[\w-]+(?:\s+[\w,-]+)?)*?)(?:\s+--\s+(.*))?$")


def demo_command(line, demo):
    """`cargo run -p tenancy-demo ... -- ARGS` as the prebuilt binary, or None."""
    m = CARGO_RUN.search(line.strip())
    if not m:
        return None
    cargo, args = m.group(1) or "", m.group(2) or ""
    strategy = None
    features = re.search(r"--features\s+([\w,-]+)", cargo)
    if features and "all-strategies" not in features.group(1) and "--no-default-features" in cargo:
        strategy = features.group(1).split(",")[0]
    argv = [demo] + shlex.split(args)
    if strategy and "--strategy" not in argv:
        argv[1:1] = ["--strategy", strategy]
    return " ".join(shlex.quote(a) for a in argv)


class Shell:
    """One bash session: each block runs in it, so variables carry over as in a terminal."""

    END = "__QUICKSTART_END__"

    def __init__(self, cwd, env):
        self.proc = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            text=True,
        )

    def environment(self):
        """The session's exported variables, as the next command typed there would see them."""
        _, out = self.run("env -0; echo")
        pairs = [item.split("=", 1) for item in out.rstrip("\n").split("\0") if "=" in item]
        return dict(pairs)

    def run(self, code):
        self.proc.stdin.write(code + f"\nprintf '\\n{self.END} %s\\n' $?\n")
        self.proc.stdin.flush()
        out = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                sys.exit("the shell ended:\n" + "".join(out))
            if line.startswith(self.END):
                return int(line.split()[1]), "".join(out)
            out.append(line)


RUNNING = []


@atexit.register
def stop_running():
    """A demo still running when the check stops (failed or not) is stopped with it."""
    for proc in RUNNING:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


RECORDED = {}
RECORD = False


def recorded(got, work):
    got = re.sub(r"tnc_[0-9a-f]{64}", "<TOKEN>", got.replace(work, "/home/you/tenancy"))
    return "\n".join(line.rstrip() for line in got.strip("\n").splitlines())


def compare(where, got, expected, span=None, work=None):
    if RECORD:
        RECORDED[span] = recorded(got, work)
        return
    want, have = mask(expected), mask(got)
    if want != have:
        print(f"--- {where}: the book shows", file=sys.stderr)
        print("\n".join(want), file=sys.stderr)
        print(f"--- {where}: the command printed", file=sys.stderr)
        print("\n".join(have), file=sys.stderr)
        sys.exit(f"{where}: the output differs from the book's")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["embedded", "url"], required=True)
    parser.add_argument("--demo", required=True)
    parser.add_argument("--chapter", default=os.path.join(os.path.dirname(__file__), "src/quick-start.md"))
    parser.add_argument("--dir", help="the folder to run in (default: a new one)")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    global RECORD
    RECORD = args.record
    demo = os.path.abspath(args.demo)
    work = args.dir or tempfile.mkdtemp(prefix="quickstart-")
    env = dict(os.environ)
    if args.mode == "embedded":
        env.pop("DATABASE_URL", None)
    elif "DATABASE_URL" not in env:
        sys.exit("--mode url needs DATABASE_URL (a server the commands may create databases on)")
    # The book's port, unless taken: then any, and the outputs are compared without it.
    env.setdefault("TENANCY__HTTP__PORT", "8080")
    shell = Shell(work, env)
    server = None
    ran = 0
    found = blocks(args.chapter)
    for kind, modes, language, code, expected, line, span in found:
        if "cleanup" in modes and (args.mode in modes or modes == ["cleanup"]):
            shell.run(code)
    for kind, modes, language, code, expected, line, span in found:
        named = [m for m in modes if m in ("embedded", "url")]
        if named and args.mode not in named:
            continue
        where = f"{os.path.basename(args.chapter)}:{line}"
        ran += 1
        if kind == "start":
            command = demo_command(code, demo)
            if command is None:
                sys.exit(f"{where}: a start block must be a `cargo run -p tenancy-demo` line")
            if server:
                sys.exit(f"{where}: the demo is already running")
            log = open(os.path.join(work, ".quickstart-demo.out"), "w+")
            err = open(os.path.join(work, ".quickstart-demo.err"), "w+")
            server = subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=work,
                env=shell.environment(),
                stdout=log,
                stderr=err,
                start_new_session=True,
            )
            RUNNING.append(server)
            printed = ""
            for _ in range(240):
                log.seek(0)
                printed = log.read()
                if "listening on" in printed:
                    time.sleep(1.5)
                    log.seek(0)
                    printed = log.read()
                    break
                if server.poll() is not None:
                    err.seek(0)
                    sys.exit(f"{where}: the demo stopped at start:\n{printed}{err.read()}")
                time.sleep(0.5)
            else:
                err.seek(0)
                sys.exit(f"{where}: the demo printed no 'listening on' line:\n{printed}{err.read()}")
            if expected is not None:
                compare(where, printed, expected, span, work)
        elif kind == "stop":
            if not server:
                sys.exit(f"{where}: no demo runs")
            os.killpg(server.pid, signal.SIGINT)
            if server.wait(timeout=60) != 0:
                sys.exit(f"{where}: the demo did not stop cleanly on Ctrl-C")
            server = None
        elif kind == "psql":
            status, out = shell.run(f"psql -X \"$(cat .tenancy-demo/database-url)\" <<'QUICKSTART_SQL'\n{code}\nQUICKSTART_SQL")
            if status != 0:
                sys.exit(f"{where}: psql failed ({status}):\n{out}")
            if expected is not None:
                compare(where, out, expected, span, work)
        else:
            script = "\n".join(demo_command(l, demo) or l for l in code.splitlines())
            status, out = shell.run(script)
            if status != 0:
                sys.exit(f"{where}: exited {status}:\n{out}")
            if expected is not None:
                compare(where, out, expected, span, work)
    if server:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=60)
    if RECORD:
        lines = open(args.chapter, encoding="utf-8").read().split("\n")
        for (start, end), text in sorted(RECORDED.items(), reverse=True):
            lines[start + 1 : end] = text.split("\n") if text else []
        open(args.chapter, "w", encoding="utf-8").write("\n".join(lines))
    print(f"quick start ({args.mode}): {ran} blocks ran as the book shows them, in {work}")


if __name__ == "__main__":
    main()
