#!/usr/bin/env python3
"""Generate the lab's demo model: a few files shaped like a Hugging Face model
directory, with deterministic content, and its SHA256SUMS manifest.

It is not a working model (no weights can be fetched here); it stands in for
one so that sync, verification and the serving stand-in have real files to
work on. Deterministic bytes keep the manifest stable across rebuilds.
"""
import hashlib
import json
import os
import sys

SHARDS = (("model-00001-of-00002.safetensors", 3 * 1024 * 1024),
          ("model-00002-of-00002.safetensors", 2 * 1024 * 1024 + 12345))


def det_bytes(seed, size):
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%s:%d" % (seed.encode(), counter)).digest() * 64
        counter += 1
    return bytes(out[:size])


def main(dest):
    os.makedirs(dest, exist_ok=True)
    files = {
        "config.json": json.dumps({"architectures": ["DemoForCausalLM"], "model_type": "airgap-demo",
                                   "note": "lab demo model, not a real LLM"}, indent=2).encode() + b"\n",
        "tokenizer/tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "demo"}}).encode() + b"\n",
    }
    for name, size in SHARDS:
        files[name] = det_bytes(name, size)
    lines = []
    for rel in sorted(files):
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(files[rel])
        lines.append("%s  %s" % (hashlib.sha256(files[rel]).hexdigest(), rel))
    with open(os.path.join(dest, "SHA256SUMS"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
