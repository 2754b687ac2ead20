#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs a guide snippet as user nobody (uid and gid 65534, no groups, no
capabilities), to check what the guide says about running without root.
Exit status: the program's; 77 (skipped) when not started as root."""
import os
import sys


def drop():
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)


if os.geteuid() != 0:
    print('SKIP: not root, so already unprivileged (see the plain run)')
    sys.exit(77)
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    try:
        drop()
        os.execv(sys.argv[1], sys.argv[1:])
    finally:
        os._exit(127)
_, status = os.waitpid(pid, 0)
if os.WIFSIGNALED(status):
    print('%s: killed by signal %d' % (sys.argv[1], os.WTERMSIG(status)),
          file=sys.stderr)
    sys.exit(1)
sys.exit(os.WEXITSTATUS(status))
