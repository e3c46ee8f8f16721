#!/usr/bin/env python3
"""Run a command under a fresh pty, as a user at a terminal would.

usage: pty-run.py CMD ARGS...
Prints everything the command wrote to the terminal; once the output holds
'TTY-YES' it types 'ping' + Enter. Exits with the command's exit status
(128+N if a signal ended it). Gives up (status 124) after $PTY_TIMEOUT s (30).
"""
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time


def main():
    argv = sys.argv[1:]
    if not argv:
        print("usage: pty-run.py CMD ARGS...", file=sys.stderr)
        return 2
    deadline = time.monotonic() + float(os.environ.get("PTY_TIMEOUT", "30"))
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    out = b""
    typed = False
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        if not typed and b"TTY-YES" in out:
            os.write(fd, b"ping\n")
            typed = True
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace"))
        print("pty-run: timed out", file=sys.stderr)
        return 124
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode(errors="replace"))
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
