#!/usr/bin/env python3
"""Fails if a README or doc names a repository file that does not exist.

A path is a backticked or linked token with a '/' that ends in a source or config extension (or
a '/'), e.g. `dataplane/serving/src/state.rs` or `pipeline/train.rs`. It exists when it resolves
from the repository root or the doc's folder, or is the tail of a tracked path (docs often name
`pipeline/train.rs` for `dataplane/recsys/src/pipeline/train.rs`). Absolute paths, URLs, globs,
placeholders and outputs a run creates (target/, data/, artifacts/, models/, .venv/) are skipped,
and so are changelogs (history may name files that no longer exist).
"""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTENSIONS = (".rs", ".md", ".sh", ".py", ".yaml", ".yml", ".toml", ".proto", ".json", ".lua",
              ".tpl", ".txt", ".csv", "Dockerfile", "Makefile")
GENERATED = ("target/", "data/", "artifacts/", "models/", ".venv/", "../shared", "tmp/")
TOKEN = re.compile(r"`([^`\s]+)`|\]\(([^)\s#]+)")


def tracked():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    files = out.stdout.split()
    dirs = {os.path.dirname(f) + "/" for f in files}
    for f in list(files):
        parts = f.split("/")
        dirs.update("/".join(parts[:i]) + "/" for i in range(1, len(parts)))
    return files, dirs


def candidates(text):
    for m in TOKEN.finditer(text):
        token = (m.group(1) or m.group(2)).rstrip(".,:;")
        token = re.sub(r":\d+(-\d+)?$", "", token)  # file.rs:120
        if "/" not in token or "://" in token or token.startswith(("/", "~", "$", "-")):
            continue
        if any(c in token for c in "<>*{}…|=[]()'\""):
            continue
        if token.startswith(GENERATED) or not (token.endswith(EXTENSIONS) or token.endswith("/")):
            continue
        yield token


def exists(token, doc_dir, files, dirs):
    for base in (ROOT, doc_dir):
        if os.path.exists(os.path.normpath(os.path.join(base, token))):
            return True
    if token.endswith("/"):
        return any(d.endswith("/" + token) or d == token for d in dirs)
    tail = token.lstrip("./")
    return any(f == tail or f.endswith("/" + tail) for f in files)


def main():
    files, dirs = tracked()
    # A changelog records what was true when it was written, files since removed included.
    docs = [f for f in files if f.endswith(".md") and "/changelog/" not in f]
    missing = []
    for doc in docs:
        text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
        for token in sorted(set(candidates(text))):
            if not exists(token, os.path.dirname(os.path.join(ROOT, doc)), files, dirs):
                missing.append(f"{doc}: {token}")
    if missing:
        print("docs name paths that do not exist:", *missing, sep="\n  ", file=sys.stderr)
        return 1
    print(f"every path named in {len(docs)} docs exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
