#!/usr/bin/env python3
"""Fails when a workspace crate declares a dependency its code never names.

For every member's Cargo.toml, each entry of [dependencies], [dev-dependencies] and
[build-dependencies] must be named (as `name::`, `use name`, `name!` or `extern crate name`,
with `-` read as `_`) in the sources that kind of dependency serves: src/ for normal ones,
src/, tests/, benches/ and examples/ for dev ones, build.rs for build ones. A dependency kept
only for the features it turns on is listed, with the reason, under
[package.metadata.unused-deps] ignore = [...] in that crate's manifest.

    scripts/check-unused-deps.py            # the whole workspace
"""
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def members():
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    return [ROOT / m for m in workspace]


def rust_files(path):
    return [path] if path.is_file() else sorted(path.rglob("*.rs")) if path.is_dir() else []


def rust_text(crate, dirs):
    """All Rust source under `dirs` of `crate` (files or directories), with the modules a
    `#[path = "..."]` attribute mounts from elsewhere, concatenated."""
    seen, out = set(), []
    pending = [f for d in dirs for f in rust_files(crate / d)]
    while pending:
        f = pending.pop().resolve()
        if f in seen:
            continue
        seen.add(f)
        text = f.read_text(errors="replace")
        out.append(text)
        for target in re.findall(r'#\[path\s*=\s*"([^"]+)"\]', text):
            mounted = (f.parent / target).resolve()
            pending.extend(rust_files(mounted.parent if mounted.name == "mod.rs" else mounted))
    return "\n".join(out)


def named(lib, text):
    pattern = rf"(\b{lib}::|\buse\s+{lib}\b|\b{lib}!|extern\s+crate\s+{lib}\b|\b{lib}\s*\{{)"
    return re.search(pattern, text) is not None


def lib_name(name, spec):
    """The name code uses for dependency `name` (a `package =` rename keeps the key)."""
    return name.replace("-", "_")


def check(crate):
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    ignored = set(
        manifest.get("package", {}).get("metadata", {}).get("unused-deps", {}).get("ignore", [])
    )
    # `pub use` of a crate inside a macro, or names only in attributes, still count: the text
    # search is over every line.
    sources = {
        "dependencies": ["src"],
        "dev-dependencies": ["src", "tests", "benches", "examples"],
        "build-dependencies": ["build.rs"],
    }
    unused = []
    for kind, dirs in sources.items():
        text = rust_text(crate, dirs)
        for name, spec in manifest.get(kind, {}).items():
            if name in ignored:
                continue
            if not named(lib_name(name, spec), text):
                unused.append(f"{crate.relative_to(ROOT)}/Cargo.toml [{kind}] {name}")
    return unused


def main():
    unused = [u for crate in members() for u in check(crate)]
    if unused:
        print("dependencies no code names (remove them, or list them under "
              "[package.metadata.unused-deps] ignore with the reason):")
        for u in unused:
            print(f"  {u}")
        return 1
    print(f"every declared dependency is used ({len(members())} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
