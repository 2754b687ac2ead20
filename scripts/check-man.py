#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the man pages in doc/man/ against the public header and the map.

Usage: check-man.py SOURCE_DIR [--scdoc PATH] [--build-dir DIR]

Fails (exit 1, one line per problem) when:
  - a symbol exported by lib/libuffd.map (any version node) is not named in
    the NAME section of some section-3 page (so it would have no page or
    alias);
  - a page names a function that is not declared in include/libuffd.h (nor
    one of the PLANNED functions below), or a function is named on two
    pages;
  - a named function has no prototype in its page's SYNOPSIS, or that
    prototype differs from the header's declaration (whitespace
    normalised), or the SYNOPSIS declares a function its NAME omits;
  - a page's title or file name does not match, libuffd(7)'s SEE ALSO
    misses a page, or a reference such as *uffd_foo*(3) names nothing;
  - with --scdoc: scdoc fails on a page, or its output leaves bold or
    italics open at the end of a paragraph;
  - a prose line starts with "." but is no list entry (scdoc drops the
    dot);
  - with --build-dir: a page or an alias was not generated there.
"""
import argparse
import glob
import os
import re
import subprocess
import sys

# Functions being added to the header, documented ahead of it: their
# pages are checked against these declarations until the header has them.
PLANNED = {}

problems = []


def problem(msg):
    problems.append(msg)


def normalise(decl):
    """One spelling per declaration: single spaces, none around ( ) , *."""
    decl = re.sub(r'\s+', ' ', decl).strip().rstrip(';').strip()
    return re.sub(r' ?([(),*]) ?', r'\1', decl)


def declarations(code):
    """name -> normalised prototype of the functions declared in C code
    (comments, preprocessor lines, typedefs and struct members skipped)."""
    code = re.sub(r'/\*.*?\*/', ' ', code, flags=re.S)
    code = re.sub(r'//[^\n]*', ' ', code)
    code = re.sub(r'\\\n', ' ', code)
    code = '\n'.join(l for l in code.split('\n')
                     if not l.lstrip().startswith('#'))
    found = {}
    for chunk in code.split(';'):
        chunk = re.split(r'[{}]', chunk)[-1]
        chunk = re.sub(r'\s+', ' ', chunk).strip()
        if chunk.startswith('typedef') or chunk.startswith('extern "C"'):
            continue
        m = re.match(r'^([^()]*?)\b(uffd_\w+)\s*\((.*)\)$', chunk)
        if m:
            found.setdefault(m.group(2), []).append(normalise(chunk))
    return found


def map_symbols(path):
    syms = set()
    with open(path) as f:
        text = re.sub(r'#[^\n]*', '', f.read())
    for node in re.finditer(r'(\w+)\s*\{(.*?)\}', text, re.S):
        body = node.group(2)
        body = body.split('local:')[0]
        for s in re.findall(r'(?:global:)?\s*([A-Za-z_]\w*)\s*;', body):
            syms.add(s)
    return syms


def sections(text):
    """'# NAME' style sections -> their text."""
    out = {}
    parts = re.split(r'^# (.+)$', text, flags=re.M)
    for i in range(1, len(parts), 2):
        out[parts[i].strip()] = parts[i + 1]
    return out


def code_blocks(text):
    return re.findall(r'^```\n(.*?)^```$', text, flags=re.S | re.M)


def name_list(name_section):
    par = ' '.join(name_section.strip().split('\n'))
    if ' - ' not in par:
        return None
    return [n.strip() for n in par.split(' - ')[0].split(',') if n.strip()]


def lint_source(page, text):
    in_code = False
    for no, line in enumerate(text.split('\n'), 1):
        if line.startswith('```'):
            in_code = not in_code
            continue
        body = line.lstrip('\t')
        # ". item" is a numbered list entry; any other leading dot is lost
        if not in_code and body.startswith('.') and not body.startswith('. '):
            problem(f'{page}:{no}: a prose line starting with "." loses '
                    'its dot in scdoc')


def lint_roff(page, roff):
    """Bold or italics still on at the end of a paragraph or section."""
    font = 'R'
    for no, line in enumerate(roff.split('\n'), 1):
        if line.startswith('.') and not line.startswith('.\\"'):
            if font != 'R' and re.match(r'\.(P|PP|SH|SS|TP|IP|RS|RE|nf)\b',
                                        line):
                problem(f'{page}: formatting (\\f{font}) left open before '
                        f'roff line {no}: unbalanced * or _ in the source')
                font = 'R'
            continue
        for f in re.findall(r'\\f([BIR])', line):
            font = f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('source_dir')
    ap.add_argument('--scdoc')
    ap.add_argument('--build-dir')
    args = ap.parse_args()
    src = args.source_dir
    man = os.path.join(src, 'doc', 'man')

    with open(os.path.join(src, 'include', 'libuffd.h')) as f:
        header = declarations(f.read())
    for name, protos in header.items():
        if len(protos) > 1:
            problem(f'libuffd.h declares {name} more than once')
    header = {n: p[0] for n, p in header.items()}
    exported = map_symbols(os.path.join(src, 'lib', 'libuffd.map'))
    if len(exported) < 50:
        problem(f'lib/libuffd.map: only {len(exported)} symbols read')
    reference = dict(header)
    for name, decl in PLANNED.items():
        reference.setdefault(name, normalise(decl))

    documented = {}   # function -> page it is documented on
    pages = {}        # page file name (without .scd) -> text
    for path in sorted(glob.glob(os.path.join(man, '*.scd'))):
        fname = os.path.basename(path)[:-len('.scd')]
        with open(path) as f:
            pages[fname] = f.read()
    if not pages:
        problem(f'no pages in {man}')

    for fname, text in pages.items():
        page, _, section = fname.rpartition('.')
        title = text.split('\n', 1)[0].split(' ')[0]
        if title != f'{page}({section})':
            problem(f'{fname}.scd: title "{title}" should be '
                    f'"{page}({section})"')
        lint_source(f'{fname}.scd', text)
        secs = sections(text)
        for s in ('NAME', 'DESCRIPTION', 'SEE ALSO'):
            if s not in secs:
                problem(f'{fname}.scd: no {s} section')
        if section != '3':
            continue
        for s in ('SYNOPSIS', 'RETURN VALUE', 'ERRORS'):
            if s not in secs:
                problem(f'{fname}.scd: no {s} section')
        names = name_list(secs.get('NAME', ''))
        if not names:
            problem(f'{fname}.scd: NAME is not "name, name - summary"')
            continue
        if page not in names:
            problem(f'{fname}.scd: NAME does not list {page} itself')
        synopsis = declarations('\n'.join(
            code_blocks(secs.get('SYNOPSIS', ''))))
        for name in names:
            if name in documented:
                problem(f'{name} is named on both {documented[name]} and '
                        f'{fname}.scd')
            documented[name] = f'{fname}.scd'
            if name not in reference:
                problem(f'{fname}.scd documents {name}, which libuffd.h '
                        'does not declare')
                continue
            if name not in synopsis:
                problem(f'{fname}.scd: no prototype of {name} in SYNOPSIS')
                continue
            if synopsis[name][0] != reference[name]:
                problem(f'{fname}.scd: SYNOPSIS of {name} differs from '
                        f'the header:\n  page:   {synopsis[name][0]}\n'
                        f'  header: {reference[name]}')
        for name in synopsis:
            if name not in names:
                problem(f'{fname}.scd: SYNOPSIS declares {name}, which '
                        'NAME does not list')

    for sym in sorted(exported - set(documented)):
        problem(f'{sym} is exported (lib/libuffd.map) but has no man page')

    # References to libuffd pages must resolve; libuffd(7) lists them all.
    targets = set()
    for fname in pages:
        page, _, section = fname.rpartition('.')
        targets.add(f'{page}({section})')
    targets |= {f'{n}(3)' for n in documented}
    for fname, text in pages.items():
        for ref in sorted(set(re.findall(
                r'\*((?:uffd|libuffd)[\w-]*)\*\((\d)\)', text))):
            if f'{ref[0]}({ref[1]})' not in targets:
                problem(f'{fname}.scd refers to {ref[0]}({ref[1]}), '
                        'which no page documents')
    overview = sections(pages.get('libuffd.7', '')).get('SEE ALSO', '')
    for fname in pages:
        page, _, section = fname.rpartition('.')
        if fname != 'libuffd.7' and f'*{page}*({section})' not in overview:
            problem(f'libuffd.7.scd: SEE ALSO does not list '
                    f'{page}({section})')

    if args.scdoc:
        for fname, text in pages.items():
            r = subprocess.run([args.scdoc], input=text.encode(),
                               capture_output=True)
            if r.returncode:
                problem(f'{fname}.scd: scdoc failed: '
                        f'{r.stderr.decode().strip()}')
            else:
                lint_roff(f'{fname}.scd', r.stdout.decode())

    if args.build_dir:
        built = set(os.listdir(args.build_dir))
        for fname in pages:
            if fname not in built:
                problem(f'{fname} was not generated in {args.build_dir} '
                        '(missing from doc/meson.build?)')
        for name, page in documented.items():
            main_page = page[:-len('.scd')]
            if name + '.3' == main_page:
                continue
            path = os.path.join(args.build_dir, name + '.3')
            try:
                with open(path) as f:
                    so = f.read().strip()
            except OSError:
                problem(f'no alias page {name}.3 in {args.build_dir}')
                continue
            if so != f'.so man3/{main_page}':
                problem(f'{name}.3 says "{so}", not ".so man3/{main_page}"')

    for p in problems:
        print(p)
    print(f'{len(pages)} pages, {len(documented)} functions documented, '
          f'{len(exported)} exported: '
          f'{"FAIL, %d problems" % len(problems) if problems else "ok"}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
