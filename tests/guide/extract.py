#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The C snippets of doc/guide.md, for the test suite.

Every C code block of the guide is a complete program, announced by a
marker on the line before its opening fence:

    <!-- snippet: NAME [MODE] -->
    ```c
    ...
    ```

NAME is [a-z0-9-]+ and unique. MODE says what the test suite does with it:
  run           compile it, run it, expect exit 0 (the default)
  compile       compile it only (unsafe or impossible to run here)
  hugetlb       compile it; run it with three 2 MiB huge pages reserved
                (skipped when they cannot be had)
  unprivileged  run it as is, and again as user nobody when root

Commands:
  extract.py check GUIDE          fails if a C block has no marker, a marker
                                  no C block, or a name or mode is wrong
  extract.py extract GUIDE NAME OUT
                                  writes snippet NAME to OUT, with #line
                                  directives so compiler messages point at
                                  the guide
"""
import re
import sys

MODES = ('run', 'compile', 'hugetlb', 'unprivileged')
# Exactly this spelling: tests/guide/meson.build looks for lines starting
# with "<!-- snippet:", and anything else that looks like a marker is an
# error, so no snippet is checked here but missed by the build.
MARKER = re.compile(r'^<!-- snippet:(?P<body>.*?)-->\s*$')
LOOKS_LIKE_MARKER = re.compile(r'^\s*<!--\s*snippet', re.IGNORECASE)
FENCE = re.compile(r'^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)')
NAME = re.compile(r'^[a-z0-9][a-z0-9-]*$')
# Info strings that mean C: a block in any of them needs a marker.
C_INFO = ('c', 'h', 'c99', 'c11')


class Snippet:
    def __init__(self, name, mode, line):
        self.name = name
        self.mode = mode
        self.line = line       # line number of the first code line
        self.code = []


def parse(path):
    """Returns (snippets, errors)."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    snippets, errors = [], []
    pending = None          # (marker line number, name, mode)
    i = 0
    while i < len(lines):
        line = lines[i]
        m = MARKER.match(line)
        if not m and LOOKS_LIKE_MARKER.match(line):
            errors.append('%s:%d: malformed marker (write exactly '
                          '"<!-- snippet: NAME [MODE] -->" at the start of '
                          'the line)' % (path, i + 1))
        if m:
            if pending:
                errors.append('%s:%d: marker without a C block after it'
                              % (path, pending[0]))
            words = m.group('body').split()
            name = words[0] if words else ''
            mode = words[1] if len(words) > 1 else 'run'
            if not NAME.match(name):
                errors.append('%s:%d: bad snippet name %r' % (path, i + 1, name))
            if mode not in MODES or len(words) > 2:
                errors.append('%s:%d: bad snippet mode %r (one of %s)'
                              % (path, i + 1, ' '.join(words[1:]),
                                 ', '.join(MODES)))
            pending = (i + 1, name, mode)
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if pending and line.strip():
                errors.append('%s:%d: marker not followed by a ```c block'
                              % (path, pending[0]))
                pending = None
            i += 1
            continue
        # a fenced block: find its end
        fence, info = f.group('fence'), f.group('info').lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and not re.match(
                r'^\s*' + re.escape(fence[0]) + '{%d,}\\s*$' % len(fence),
                lines[i]):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if info in C_INFO:
            if not pending:
                errors.append('%s:%d: ```%s block without a '
                              '<!-- snippet: NAME --> marker on the line '
                              'before it' % (path, start + 1, info))
            else:
                s = Snippet(pending[1], pending[2], start + 2)
                s.code = body
                snippets.append(s)
        elif pending:
            errors.append('%s:%d: marker followed by a ```%s block, not C'
                          % (path, pending[0], info))
        pending = None
    if pending:
        errors.append('%s:%d: marker without a C block after it'
                      % (path, pending[0]))
    seen = set()
    for s in snippets:
        if s.name in seen:
            errors.append('%s:%d: snippet name %r used twice'
                          % (path, s.line - 1, s.name))
        seen.add(s.name)
    return snippets, errors


def main(argv):
    if len(argv) == 3 and argv[1] == 'check':
        snippets, errors = parse(argv[2])
        for e in errors:
            print(e, file=sys.stderr)
        if not snippets and not errors:
            print('%s: no snippets found' % argv[2], file=sys.stderr)
            return 1
        if not errors:
            print('%d snippets, every C block marked: %s'
                  % (len(snippets), ', '.join(
                      '%s (%s)' % (s.name, s.mode) for s in snippets)))
        return 1 if errors else 0
    if len(argv) == 5 and argv[1] == 'extract':
        snippets, errors = parse(argv[2])
        if errors:
            for e in errors:
                print(e, file=sys.stderr)
            return 1
        for s in snippets:
            if s.name == argv[3]:
                with open(argv[4], 'w', encoding='utf-8') as out:
                    out.write('/* Generated from %s by %s: edit the guide, '
                              'not this file. */\n' % (argv[2], argv[0]))
                    out.write('#line %d "%s"\n' % (s.line, argv[2]))
                    out.write('\n'.join(s.code) + '\n')
                return 0
        print('%s: no snippet named %r' % (argv[2], argv[3]), file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
