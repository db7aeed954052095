#!/usr/bin/env python3
"""The bad-input suite: hostile inputs through the real `lm` binary.

Builds every bad input in a scratch folder (broken safetensors and GGUF files, config.json
variants, corpora, TSVs, --file inputs, option values, unwritable outputs, shared output
folders, piped chat sessions), runs each case against the binary and checks the global rules
for every case:

  1. no crash: no death by a signal (except the closed-pipe cases' SIGPIPE), and no
     "Fatal error", "Illegal instruction", "Segmentation", "Stack dump", "Backtrace",
     "Current stack trace" or "Assertion failed" on stderr;
  2. no exit 0 on failure: a case marked as bad input must exit non-zero;
  3. the error is one line: stderr's last non-empty line starts with "Error:" or "error:"
     (notes and progress lines before it are fine), and a negative number never gets
     ArgumentParser's generic "Missing value";

plus each case's own expectations (substrings, unchanged files, output shapes). Good inputs
that must succeed (CRLF files, blank lines that give error objects, --temperature 1e-45) must
exit 0 with the expected output.

Usage: python3 Benchmarks/badinput/run.py [--lm PATH] [--shared ../shared] [--only SUBSTRING] [--json]

Python 3 standard library only. Prints one line per failing case, then `N passed, N failed`;
with --json, stdout is one JSON object {passed, failed, crashes, exit0_on_failure, cases} and
the human-readable lines go to stderr. Exits 1 when any case failed.
"""

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CRASH_MARKERS = ("Fatal error", "Illegal instruction", "Segmentation", "Stack dump", "Backtrace",
                 "Current stack trace", "Assertion failed")

# What a case accepts.
FAIL = "fail"        # bad input: non-zero exit, one-line error
OK = "ok"            # good input: exit 0
EITHER = "either"    # exit 0, or a non-zero exit with a one-line error
DEVFULL = "devfull"  # stdout is /dev/full: non-zero exit, one line "cannot write the output"
PIPE = "pipe"        # stdout is a pipe nobody reads: exit 141 (128 + SIGPIPE), nothing on stderr
STREAM = "stream"    # runs until the suite kills it; it must have been producing output


class Skip(Exception):
    """A case that cannot run here (for example a permission case when running as root)."""


class Case:
    def __init__(self, cat, name, args, expect=FAIL, stdin=b"", out="pipe", err=(), out_has=(),
                 err_not=(), unchanged=(), check=None, timeout=60, before=None, after=None,
                 note=None, pipe_quiet_only=False, absent=()):
        self.cat, self.name, self.args, self.expect = cat, name, args, expect
        self.stdin = stdin.encode() if isinstance(stdin, str) else stdin
        self.out = out                  # "pipe", "devfull" or "closed"
        self.err = err                  # substrings stderr must contain (str or callable)
        self.out_has = out_has          # substrings stdout must contain
        self.err_not = err_not          # substrings stderr must not contain
        self.unchanged = unchanged      # paths whose bytes must not change
        self.absent = absent            # paths that must not exist afterwards
        self.check = check              # f(result) -> None or a failure reason
        self.timeout = timeout
        self.before, self.after = before, after
        self.note = note                # why the expectation is what it is
        self.pipe_quiet_only = pipe_quiet_only  # PIPE: progress lines before the write are fine


def resolve(v):
    return v() if callable(v) else v


def show_arg(a):
    if isinstance(a, bytes):
        return "$'" + "".join(chr(b) if 32 <= b < 127 and b not in (39, 92) else "\\x%02x" % b for b in a) + "'"
    return shlex.quote(a)


def digest(path):
    """The bytes under `path` (a file, or every file of a folder), as one hash."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for base, dirs, files in sorted(os.walk(path)):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(base, f)
                h.update(os.path.relpath(p, path).encode())
                with open(p, "rb") as fh:
                    h.update(fh.read())
    elif os.path.exists(path):
        with open(path, "rb") as fh:
            h.update(fh.read())
    else:
        h.update(b"<absent>")
    return h.hexdigest()


def last_lines(text, n=3):
    lines = [ln for ln in text.replace("\r", "\n").split("\n") if ln.strip()]
    return lines[-n:]


def is_negative_number(a):
    if not isinstance(a, str) or len(a) < 2 or not a.startswith("-"):
        return False
    try:
        float(a[1:])
    except ValueError:
        return False
    return a[1].isdigit() or a[1] == "."


# ---------------------------------------------------------------------------------------------
# Running one case


def popen(cmd, **kw):
    """subprocess.Popen that waits out a binary being relinked by a concurrent `swift build`
    (ETXTBSY while the linker writes it, ENOENT between unlink and rename)."""
    deadline = time.time() + 300
    while True:
        try:
            return subprocess.Popen(cmd, **kw)
        except OSError as e:
            if e.errno not in (26, 2) or time.time() > deadline or not os.path.isabs(cmd[0]):
                raise
            time.sleep(0.5)


def run_lm(cmd, input=b"", cwd=None):
    """subprocess.run for the setup steps (through popen's retry)."""
    p = popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    out, err = p.communicate(input)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


class Runner:
    def __init__(self, lm, scratch, env):
        self.lm, self.scratch, self.env = lm, scratch, env

    def run(self, c):
        t0 = time.time()
        res = {"name": c.name, "category": c.cat, "expect": c.expect, "status": None,
               "passed": False, "reasons": [], "crash": False, "exit0_on_failure": False}
        try:
            if c.before:
                c.before()
            args = [resolve(a) for a in resolve(c.args)]
        except Skip as e:
            res.update(skipped=str(e), passed=True, command="lm " + c.name)
            return res
        cmd = [self.lm] + args
        shown = "lm " + " ".join(show_arg(a) for a in args)
        if c.stdin:
            shown += " <stdin:%d bytes>" % len(c.stdin)
        shown += {"devfull": " >/dev/full", "closed": " >closed-pipe"}.get(c.out, "")
        res["command"] = shown
        snap = {p: digest(p) for p in resolve(c.unchanged)}

        rfd = wfd = None
        devfull = None
        if c.out == "devfull":
            import stat as stat_
            if not stat_.S_ISCHR(os.stat("/dev/full").st_mode):
                raise RuntimeError("/dev/full is not a device (something replaced it): refusing to write to it")
            devfull = open("/dev/full", "wb")
            stdout = devfull
        elif c.out == "closed":
            rfd, wfd = os.pipe()
            os.close(rfd)   # the reader is gone before lm writes anything
            stdout = wfd
        else:
            stdout = subprocess.PIPE
        try:
            p = popen(cmd, stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE, cwd=self.scratch, env=self.env)
        finally:
            if wfd is not None:
                os.close(wfd)
                wfd = None
            if devfull:
                devfull.close()
                devfull = None
        killed = False
        try:
            out, err = p.communicate(c.stdin, timeout=c.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            killed = True
            out, err = p.communicate()
        out = out or b""
        err_text = (err or b"").decode("utf-8", "replace")
        status = p.returncode
        res.update(status=status, seconds=round(time.time() - t0, 2), killed=killed,
                   stderr_tail=last_lines(err_text, 4), stdout_bytes=len(out))
        reasons = res["reasons"]
        r = {"status": status, "stdout": out, "stderr": err_text, "killed": killed, "args": args}

        # Rule 1: no crash.
        sigpipe_ok = c.expect == PIPE and status in (141, -signal.SIGPIPE)
        if status is not None and status < 0 and not killed and not sigpipe_ok:
            reasons.append("crashed: killed by signal %d" % -status)
            res["crash"] = True
        if status is not None and status > 128 and status - 128 in (4, 6, 7, 8, 11) and not sigpipe_ok:
            reasons.append("crashed: exit %d (128 + signal %d)" % (status, status - 128))
            res["crash"] = True
        for m in CRASH_MARKERS:
            if m in err_text:
                reasons.append("crash marker on stderr: %r" % m)
                res["crash"] = True
        if killed and c.expect != STREAM:
            reasons.append("hung: killed by the suite after %ss" % c.timeout)

        last = last_lines(err_text, 1)
        last = last[0] if last else ""

        def one_line_error():
            if not (last.startswith("Error:") or last.startswith("error:")):
                reasons.append("the last stderr line is not a one-line error (wants 'Error: …'): %r" % last[:200])
            if any(is_negative_number(a) for a in args) and "Missing value" in err_text:
                reasons.append("a negative number got ArgumentParser's generic 'Missing value'")

        # Rules 2 and 3 and the expectation kinds.
        if c.expect == FAIL:
            if status == 0:
                reasons.append("exit 0 on bad input")
                res["exit0_on_failure"] = True
            elif not killed:
                one_line_error()
        elif c.expect == OK:
            if status != 0 and not killed:
                reasons.append("good input must succeed (exit %s)" % status)
        elif c.expect == EITHER:
            if status not in (0, None) and not killed:
                one_line_error()
        elif c.expect == DEVFULL:
            if status == 0:
                reasons.append("exit 0 although nothing could be written (stdout is /dev/full)")
                res["exit0_on_failure"] = True
            elif not killed:
                one_line_error()
                n = err_text.count("cannot write the output")
                if n != 1:
                    reasons.append("wants exactly one line with 'cannot write the output' (found %d)" % n)
        elif c.expect == PIPE:
            if status not in (141, -signal.SIGPIPE):
                reasons.append("a closed stdout pipe must end the command with exit 141 (got %s)" % status)
                if status == 0:
                    res["exit0_on_failure"] = True
            if c.pipe_quiet_only:
                bad = [ln for ln in err_text.splitlines()
                       if ln.lower().startswith("error") or "pipe" in ln.lower() or "cannot write" in ln]
                if bad:
                    reasons.append("stderr must say nothing about the closed pipe: %r" % bad[0][:200])
            elif err_text.strip():
                reasons.append("stderr must be empty after a closed pipe: %r" % last_lines(err_text, 1))
        elif c.expect == STREAM:
            if not killed:
                if status != 0:
                    reasons.append("stopped early with exit %s (wanted it to keep producing output)" % status)
            if not out.strip():
                reasons.append("produced no output before it was stopped")

        # Case expectations, matched against stderr with the scratch paths masked (a case folder's
        # name must not satisfy an expected word by itself).
        masked = re.sub(re.escape(self.scratch) + r"[^\s'\"]*", "<path>", err_text)
        r["stderr_masked"] = masked
        for s in resolve(c.err):
            s = resolve(s)
            if s not in masked:
                reasons.append("stderr lacks %r" % s)
        for s in resolve(c.err_not):
            if s in masked:
                reasons.append("stderr must not contain %r" % s)
        text_out = out.decode("utf-8", "replace")
        for s in resolve(c.out_has):
            if s not in text_out:
                reasons.append("stdout lacks %r" % s)
        for p_, before in snap.items():
            if digest(p_) != before:
                reasons.append("%s changed" % p_)
        for p_ in resolve(c.absent):
            if os.path.exists(p_):
                reasons.append("%s exists (it must not)" % p_)
        if c.check and not killed:
            try:
                why = c.check(r)
            except Exception as e:  # a check that cannot even read the output is a failure
                why = "check raised %s: %s" % (type(e).__name__, e)
            if why:
                reasons.append(why)
        if c.after:
            try:
                c.after()
            except Exception as e:
                reasons.append("cleanup failed: %s" % e)
        res["passed"] = not reasons
        if c.note:
            res["note"] = c.note
        return res


# ---------------------------------------------------------------------------------------------
# File builders


def st_bytes(header, data=b"", hlen=None):
    """A safetensors file: u64 header length, the JSON header (a dict or raw bytes), the data."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def read_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:], b


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64 = 4, 5, 6, 7, 8, 9, 10


def gkv(key, t, v):
    body = {G_U32: lambda: struct.pack("<I", v), G_I32: lambda: struct.pack("<i", v),
            G_F32: lambda: struct.pack("<f", v), G_BOOL: lambda: struct.pack("<?", v),
            G_STR: lambda: gstr(v), G_U64: lambda: struct.pack("<Q", v)}
    if t in body:
        return gstr(key) + struct.pack("<I", t) + body[t]()
    return gstr(key) + struct.pack("<I", t) + v   # raw bytes for arrays and unknown types


def gguf(kvs=None, tensors=None, data=None, version=3, magic=b"GGUF", n_kv=None, n_t=None, align=32):
    """A GGUF file. tensors: (name, dims innermost first, ggml type, offset)."""
    if kvs is None:
        kvs = [gkv("general.architecture", G_STR, "llama"), gkv("general.name", G_STR, "bad-input")]
    if tensors is None:
        tensors = [("t", [8], 0, 0)]
    if data is None:
        data = bytes(32)
    b = magic + struct.pack("<I", version)
    b += struct.pack("<Q", len(tensors) if n_t is None else n_t)
    b += struct.pack("<Q", len(kvs) if n_kv is None else n_kv)
    for kv in kvs:
        b += kv
    for name, dims, ttype, off in tensors:
        b += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        b += struct.pack("<I", ttype) + struct.pack("<Q", off)
    b += bytes((-len(b)) % align)
    return b + data


# ---------------------------------------------------------------------------------------------
# The cases


def build(S, shared, procs):
    """Builds the inputs in scratch folder S and returns the cases."""
    M = os.path.join(ROOT, "models")
    SH, SENT, G2 = os.path.join(M, "shakespeare"), os.path.join(M, "sentiment"), os.path.join(M, "gpt2-tiny")
    MINI = os.path.join(shared, "models", "minilm-l6-v2")
    TS = os.path.join(shared, "data", "tinyshakespeare", "input.txt")
    VOCAB_GGUF = os.path.join(shared, "data", "llama-cpp-vocab", "ggml-vocab-gpt-2.gguf")
    for p in (SH, SENT, G2, MINI, TS, VOCAB_GGUF):
        if not os.path.exists(p):
            sys.exit("bad-input suite: missing %s (pass --shared, or build the models)" % p)

    def P(*parts):
        return os.path.join(S, *parts)

    def w(rel, data):
        path = P(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return path

    def variant(name, base, config=None, files=None, drop=()):
        """A model folder: links to `base`'s files, with config.json and other files replaced."""
        d = P(name)
        os.makedirs(d)
        for f in os.listdir(base):
            if f in ("log.jsonl", "loss.svg") or f in drop:
                continue
            os.symlink(os.path.join(base, f), os.path.join(d, f))
        if config is not None:
            os.remove(os.path.join(d, "config.json"))
            if callable(config):
                with open(os.path.join(base, "config.json")) as f:
                    cfg = json.load(f)
                config = json.dumps(config(cfg) or cfg)
            w(os.path.join(name, "config.json"), config)
        for f, data in (files or {}).items():
            if os.path.lexists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
            if data is not None:
                w(os.path.join(name, f), data)
        return d

    def copy(name, base):
        d = P(name)
        shutil.copytree(base, d)
        return d

    def cfgset(**kv):
        def f(cfg):
            for k, v in kv.items():
                if v is DELETE:
                    cfg.pop(k, None)
                else:
                    cfg[k] = v
        return f

    with open(TS, encoding="utf-8") as f:
        shakespeare_text = f.read()
    corpus = w("corpus.txt", shakespeare_text[:20000])
    lines = w("lines.txt", "".join("line %d is quite good\n" % i for i in range(1, 21)))
    dev = w("dev.tsv", "sentence\tlabel\n" + "".join(
        "film %d was %s\t%d\n" % (i, "great" if i % 2 == 0 else "awful", i % 2 == 0) for i in range(1, 9)))
    folder = P("a-folder")
    os.makedirs(folder)
    a_file = w("a-file.txt", "just a file\n")
    rng = random.Random(7)
    junk = bytes(rng.randrange(256) for _ in range(4096)) + b"\xff\xfe"
    bad_utf8 = b"a fine film\nb\xe9b\nmore\n"

    cases = []

    def add(*a, **k):
        cases.append(Case(*a, **k))

    def gen(model, *extra):
        return ["generate", "--model", model, "--prompt", "a", "--max-tokens", "2"] + list(extra)

    def fwd(model, name, ids="1,2"):
        return ["forward", "--model", model, "--ids", ids, "--out", P("logits-%s.safetensors" % name)]

    # ----- safetensors ------------------------------------------------------------------------
    C = "safetensors"
    hdr, data, whole = read_st(os.path.join(G2, "model.safetensors"))
    tensors = sorted((k for k in hdr if k != "__metadata__"), key=lambda k: hdr[k]["data_offsets"][0])
    A, B = tensors[0], tensors[1]
    two_d = next(k for k in tensors if len(hdr[k]["shape"]) == 2 and hdr[k]["shape"][0] != hdr[k]["shape"][1])
    hlen = struct.unpack("<Q", whole[:8])[0]

    def st_variant(name, content, cmd="forward", expect=FAIL, err=(), note=None):
        d = variant("st-%s-%s" % (name, cmd), G2, files={"model.safetensors": content})
        args = {"forward": lambda: fwd(d, name), "generate": lambda: ["generate", "--model", d, "--prompt-ids", "1,2", "--max-tokens", "2"],
                "inspect": lambda: ["inspect", d], "bench": lambda: ["bench", "--model", d, "--pp", "4", "--tg", "2", "--reps", "1"],
                "quantize": lambda: ["quantize", "--model", d, "--out", P("q-st-" + name)],
                "eval": lambda: ["eval", "--model", d, "--corpus", corpus, "--context", "32", "--max-chunks", "1"]}[cmd]()
        add(C, "st-%s (%s)" % (name, cmd), args, expect=expect, err=err, note=note)

    def hdr_with(fn):
        h = json.loads(json.dumps(hdr))
        fn(h)
        return st_bytes(h, data)

    st_variant("empty-file", b"", err=["too short"])
    st_variant("4-bytes", b"\x01\x02\x03\x04", err=["too short"])
    st_variant("header-length-2^63", struct.pack("<Q", 2 ** 63) + b"{}" + data, err=["header length"])
    st_variant("header-length-2^64-1", struct.pack("<Q", 2 ** 64 - 1) + b"{}", cmd="inspect")
    st_variant("header-length-0", struct.pack("<Q", 0) + data)
    st_variant("header-not-json", st_bytes(b"\x00\xffnot json at all", data))
    st_variant("header-json-array", st_bytes(b"[1, 2, 3]", data), err=["not a JSON object"])
    st_variant("header-cut", whole[:8 + hlen // 2], err=["header length"])
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], err=["truncated"])
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], cmd="generate", err=["truncated"])
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], cmd="inspect")
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], cmd="bench")
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], cmd="quantize")
    st_variant("data-cut", whole[:8 + hlen + len(data) // 2], cmd="eval")
    st_variant("shape-2^40x2^40", hdr_with(lambda h: h[A].update(shape=[2 ** 40, 2 ** 40])))
    st_variant("shape-2^40x2^40", hdr_with(lambda h: h[A].update(shape=[2 ** 40, 2 ** 40])), cmd="inspect")
    st_variant("shape-2^40x2^40", hdr_with(lambda h: h[A].update(shape=[2 ** 40, 2 ** 40])), cmd="generate")
    st_variant("shape-2^32-cubed", hdr_with(lambda h: h[A].update(shape=[2 ** 32, 2 ** 32, 2 ** 32])))
    st_variant("shape-2^64", hdr_with(lambda h: h[A].update(shape=[2 ** 64, 1])), cmd="inspect")
    st_variant("shape-negative", hdr_with(lambda h: h[A].update(shape=[-1, 64])), err=["negative dimension"])
    st_variant("shape-fractional", hdr_with(lambda h: h[A].update(shape=[1000.5, 64])))
    st_variant("shape-strings", hdr_with(lambda h: h[A].update(shape=["1000", "64"])))
    st_variant("shape-scalar", hdr_with(lambda h: h[A].update(shape=[])))
    st_variant("offsets-overlap", hdr_with(lambda h: h[B].update(
        data_offsets=[h[A]["data_offsets"][0] + 4, h[A]["data_offsets"][0] + 4 + h[B]["data_offsets"][1] - h[B]["data_offsets"][0]])),
        err=["overlap"])
    st_variant("offsets-overlap", hdr_with(lambda h: h[B].update(
        data_offsets=[h[A]["data_offsets"][0] + 4, h[A]["data_offsets"][0] + 4 + h[B]["data_offsets"][1] - h[B]["data_offsets"][0]])),
        cmd="inspect")
    st_variant("offsets-reversed", hdr_with(lambda h: h[A].update(data_offsets=list(reversed(h[A]["data_offsets"])))))
    st_variant("offsets-past-end", hdr_with(lambda h: h[A].update(
        data_offsets=[len(data), len(data) + h[A]["data_offsets"][1] - h[A]["data_offsets"][0]])), err=["truncated"])
    st_variant("offsets-2^64", hdr_with(lambda h: h[A].update(data_offsets=[0, 2 ** 64])))
    st_variant("offsets-three", hdr_with(lambda h: h[A].update(data_offsets=[0, 4, 8])))
    st_variant("offsets-strings", hdr_with(lambda h: h[A].update(data_offsets=["0", "4"])))
    st_variant("offsets-size-mismatch", hdr_with(lambda h: h[A].update(
        data_offsets=[h[A]["data_offsets"][0], h[A]["data_offsets"][1] - 4])), err=["needs"])
    dup = json.dumps(hdr)
    entry = json.dumps({A: hdr[A]})[1:-1]
    st_variant("duplicate-name", st_bytes(("{" + entry + ", " + dup[1:]).encode(), data), err=["twice"])
    st_variant("duplicate-name", st_bytes(("{" + entry + ", " + dup[1:]).encode(), data), cmd="inspect", err=["twice"])
    st_variant("dtype-unknown", hdr_with(lambda h: h[A].update(dtype="F7")), err=["unsupported dtype"])
    st_variant("dtype-int32", hdr_with(lambda h: h[A].update(dtype="I32")), cmd="generate")
    st_variant("entry-missing-dtype", hdr_with(lambda h: h[A].pop("dtype")), err=["needs dtype, shape and data_offsets"])
    st_variant("entry-not-object", hdr_with(lambda h: h.update({A: 5})))
    st_variant("missing-tensor", hdr_with(lambda h: h.pop(B)), err=["has no tensor"])
    st_variant("transposed-shape", hdr_with(lambda h: h[two_d].update(shape=list(reversed(h[two_d]["shape"])))),
               err=["does not match its config.json"])
    st_variant("metadata-not-strings", hdr_with(lambda h: h.update(__metadata__={"a": [1, 2]})), expect=EITHER,
               note="safetensors readers ignore __metadata__ they do not use; loading is fine")
    nan = st_bytes(hdr, b"\xff" * len(data))
    st_variant("all-nan-weights", nan, cmd="generate", err=["non-finite"],
               note="non-finite logits stop generation with one line")
    st_variant("all-nan-weights", nan, cmd="forward", expect=EITHER,
               note="forward saves the logits it computes (NaN included) for parity checks")

    # BERT safetensors, through classify and embed.
    sent_hdr, sent_data, sent_whole = read_st(os.path.join(SENT, "model.safetensors"))
    sent_hlen = struct.unpack("<Q", sent_whole[:8])[0]
    d = variant("st-bert-data-cut", SENT, files={"model.safetensors": sent_whole[:8 + sent_hlen + len(sent_data) // 3]})
    add(C, "st-bert-data-cut (classify)", ["classify", "--model", d, "a fine film"], err=["truncated"])
    add(C, "st-bert-data-cut (embed)", ["embed", "--model", d, "a fine film"], err=["truncated"])
    d = variant("st-bert-garbage", SENT, files={"model.safetensors": junk})
    add(C, "st-bert-garbage (classify)", ["classify", "--model", d, "a fine film"])
    add(C, "st-bert-garbage (eval --tsv)", ["eval", "--model", d, "--tsv", dev])

    # ----- GGUF ---------------------------------------------------------------------------------
    C = "gguf"

    def g_variant(name, content, cmd="inspect", expect=FAIL, err=(), note=None):
        path = w("gguf/%s.gguf" % name, content)
        args = {"inspect": ["inspect", path],
                "generate": ["generate", "--model", path, "--prompt-ids", "1", "--max-tokens", "2"],
                "tokenize": ["tokenize", "--tokenizer", path, "hello world"],
                "chat": ["chat", "--model", path, "--max-tokens", "2"],
                "bench": ["bench", "--model", path, "--pp", "4", "--tg", "2", "--reps", "1"],
                "eval": ["eval", "--model", path, "--corpus", corpus, "--max-chunks", "1"],
                "forward": ["forward", "--model", path, "--ids", "1", "--out", P("logits-g-%s.safetensors" % name)],
                "quantize": ["quantize", "--model", path, "--out", P("q-g-" + name)]}[cmd]
        add(C, "gguf-%s (%s)" % (name, cmd), args, expect=expect, err=err, note=note,
            stdin=b"hello\n" if cmd == "chat" else b"")
        return path

    ok_gguf = w("gguf/minimal.gguf", gguf())
    add(C, "gguf-minimal (inspect) is read", ["inspect", ok_gguf], expect=OK, out_has=["bad-input"],
        note="the builder's own sanity check: a well-formed one-tensor file")
    g_variant("minimal", gguf(), cmd="generate")
    g_variant("minimal", gguf(), cmd="chat")
    g_variant("minimal", gguf(), cmd="tokenize")
    g_variant("minimal", gguf(), cmd="quantize")
    g_variant("empty", b"", err=["GGUF"])
    g_variant("empty", b"", cmd="generate")
    g_variant("bad-magic", gguf(magic=b"GGUX"), err=["GGUF"])
    g_variant("bad-magic", gguf(magic=b"GGUX"), cmd="eval")
    g_variant("version-99", gguf(version=99), err=["version 99"])
    g_variant("version-1", gguf(version=1))
    g_variant("header-cut", gguf()[:13], err=["truncated"])
    g_variant("header-cut", gguf()[:13], cmd="tokenize")
    g_variant("kv-count-2^60", gguf(n_kv=2 ** 60), err=["corrupt"])
    g_variant("tensor-count-2^60", gguf(n_t=2 ** 60))
    g_variant("string-2^62", gguf(kvs=[gstr("general.architecture") + struct.pack("<I", G_STR) + struct.pack("<Q", 2 ** 62) + b"llama"]))
    g_variant("array-2^61", gguf(kvs=[gkv("general.architecture", G_STR, "llama"),
                                      gkv("tokenizer.ggml.scores", G_ARR, struct.pack("<I", 0) + struct.pack("<Q", 2 ** 61))]))
    g_variant("value-type-99", gguf(kvs=[gkv("general.architecture", 99, b"\x00" * 8)]), err=["unknown GGUF value type"])
    g_variant("dims-2^40x2^40", gguf(tensors=[("t", [2 ** 40, 2 ** 40], 0, 0)]))
    g_variant("dims-2^40x2^40", gguf(tensors=[("t", [2 ** 40, 2 ** 40], 0, 0)]), cmd="generate")
    g_variant("dims-2^40x2^40", gguf(tensors=[("t", [2 ** 40, 2 ** 40], 0, 0)]), cmd="bench")
    g_variant("dims-2^32^4", gguf(tensors=[("t", [2 ** 32] * 4, 0, 0)]), err=["too many elements"])
    g_variant("dims-2^64-1", gguf(tensors=[("t", [2 ** 64 - 1], 0, 0)]))
    g_variant("ndims-0", gguf(tensors=[("t", [], 0, 0)]), err=["dimensions"])
    g_variant("ndims-9", gguf(tensors=[("t", [1] * 9, 0, 0)]), err=["dimensions"])
    g_variant("dim-0", gguf(tensors=[("t", [0], 0, 0)]), expect=EITHER,
              note="an empty tensor is legal in GGUF (llama.cpp only refuses negative dimensions); inspect may list it")
    g_variant("type-unknown", gguf(tensors=[("t", [8], 99, 0)]), err=["unknown ggml type"])
    g_variant("q8-row-not-block", gguf(tensors=[("t", [10], 8, 0)]), err=["block"])
    g_variant("offset-misaligned", gguf(tensors=[("t", [4], 0, 4)]), err=["aligned"])
    g_variant("duplicate-tensor", gguf(tensors=[("t", [8], 0, 0), ("t", [8], 0, 32)], data=bytes(64)), err=["twice"])
    g_variant("overlapping", gguf(tensors=[("t", [16], 0, 0), ("u", [8], 0, 32)], data=bytes(64)), err=["overlaps"])
    g_variant("offset-past-end", gguf(tensors=[("t", [8], 0, 1 << 20)]), err=["past the end"])
    g_variant("data-cut", gguf(tensors=[("t", [64], 0, 0)], data=bytes(32)), err=["truncated"])
    g_variant("data-cut", gguf(tensors=[("t", [64], 0, 0)], data=bytes(32)), cmd="forward")
    g_variant("alignment-3", gguf(kvs=[gkv("general.architecture", G_STR, "llama"), gkv("general.alignment", G_U32, 3)]),
              err=["power of two"])
    g_variant("arch-gemma3-no-metadata", gguf(kvs=[gkv("general.architecture", G_STR, "gemma3")]), cmd="generate")
    with open(VOCAB_GGUF, "rb") as f:
        vocab = f.read()
    g_variant("vocab-cut-half", vocab[:len(vocab) // 2], cmd="tokenize")
    g_variant("vocab-cut-half", vocab[:len(vocab) // 2])
    g_variant("vocab-cut-100", vocab[:100], cmd="tokenize")
    g_variant("vocab-junk", junk, cmd="tokenize")
    add(C, "gguf vocabulary (tokenize) works", ["tokenize", "--tokenizer", VOCAB_GGUF, "--ids", "Hello world"], expect=OK,
        note="sanity: the intact vocabulary file")
    gemma = os.path.expanduser("~/.cache/swift-lm/gemma-3-270m-q4_k_m.gguf")
    if os.path.exists(gemma):
        cut = P("gguf", "gemma-cut.gguf")
        with open(gemma, "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(os.path.getsize(gemma) * 2 // 5))
        add(C, "gguf-gemma-cut-40% (generate)", ["generate", "--model", cut, "--prompt", "Hi", "--max-tokens", "2"], err=["truncated"])
        add(C, "gguf-gemma-cut-40% (inspect)", ["inspect", cut], err=["truncated"])

    # ----- config.json --------------------------------------------------------------------------
    C = "config"

    def cfg_case(name, config=None, cmd=None, expect=FAIL, err=(), base=SH, files=None, drop=(), note=None, **kw):
        d = variant("cfg-" + name, base, config=config, files=files, drop=drop)
        args = cmd(d) if cmd else gen(d)
        add(C, "cfg-%s (%s)" % (name, args[0]), args, expect=expect, err=err, note=note, **kw)
        return d

    d = cfg_case("invalid-json", b'{"model_type": "gpt2", "n_embd": ', err=["JSON"])
    add(C, "cfg-invalid-json (inspect)", ["inspect", d])
    add(C, "cfg-invalid-json (quantize)", ["quantize", "--model", d, "--out", P("q-cfg-invalid")], absent=[P("q-cfg-invalid")])
    add(C, "cfg-invalid-json (chat)", ["chat", "--model", d, "--max-tokens", "2"], stdin="hi\n")
    cfg_case("empty", b"")
    cfg_case("json-array", b"[1, 2]", err=["not a JSON object"])
    cfg_case("not-utf8", b'{"model_type": "gpt2\xe9"}')
    cfg_case("nested-100000-deep", b'{"model_type": "gpt2", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}")
    d = cfg_case("fractional-n_embd", cfgset(n_embd=64.5), err=['"n_embd" is 64.5 — it must be a whole number'])
    add(C, "cfg-fractional-n_embd (eval)", ["eval", "--model", d, "--corpus", corpus], err=["whole number"])
    add(C, "cfg-fractional-n_embd (finetune)", ["finetune", "--model", d, "--corpus", corpus, "--steps", "2", "--out", P("ft-frac")],
        err=["whole number"])
    d = cfg_case("missing-model_type", cfgset(model_type=DELETE), err=['"model_type"'])
    add(C, "cfg-missing-model_type (chat)", ["chat", "--model", d, "--max-tokens", "2"], stdin="hi\n", err=['"model_type"'])
    cfg_case("unknown-model_type", cfgset(model_type="llama9"))
    cfg_case("config.json-is-dir", None, files={"config.json": None},
             check=lambda r: None if ("folder" in r["stderr_masked"] or "directory" in r["stderr_masked"])
             else "the message does not say config.json is a folder",
             note="stands in for an unreadable config.json when the suite runs as root; the message must name the real problem")
    os.makedirs(P("cfg-config.json-is-dir", "config.json"))
    unreadable = variant("cfg-unreadable", SH, config=cfgset())

    def make_unreadable():
        if os.geteuid() == 0:
            raise Skip("running as root: a mode-000 file is still readable")
        os.chmod(os.path.join(unreadable, "config.json"), 0)
    add(C, "cfg-unreadable (generate)", gen(unreadable), before=make_unreadable, err=["cannot be read"])
    # The file holds 4 layers: the missing tensors (or the size) must be refused at once; 15 s is generous.
    d = cfg_case("n_layer-1e9", cfgset(n_layer=10 ** 9), timeout=15)
    add(C, "cfg-n_layer-1e9 (bench)", ["bench", "--model", d, "--pp", "4", "--tg", "2", "--reps", "1"], timeout=15)
    cfg_case("n_layer-1e30-float", cfgset(n_layer=1e30), err=['"n_layer"'],
             note="the JSON is valid: the message must name the key whose value is out of range")
    cfg_case("n_layer-missing", cfgset(n_layer=DELETE),
             note="transformers' GPT2Config defaults n_layer to 12: the 4-layer file then lacks layer 4's tensors")
    cfg_case("n_layer-null", cfgset(n_layer=None))
    cfg_case("n_layer-true", cfgset(n_layer=True))
    cfg_case("n_layer-string", cfgset(n_layer="4"))
    d = cfg_case("n_embd-negative", cfgset(n_embd=-128))
    add(C, "cfg-n_embd-negative (inspect)", ["inspect", d], expect=EITHER,
        note="inspect shows a folder's config and tensors; it may list a config it cannot run")
    cfg_case("n_head-0", cfgset(n_head=0))
    cfg_case("n_head-3-indivisible", cfgset(n_head=3))
    cfg_case("n_head-negative", cfgset(n_head=-4))
    d = cfg_case("vocab_size-1e12", cfgset(vocab_size=10 ** 12))
    add(C, "cfg-vocab_size-1e12 (forward)", fwd(d, "vocab1e12"))
    cfg_case("vocab_size-10", cfgset(vocab_size=10))
    cfg_case("n_positions-0", cfgset(n_positions=0, n_ctx=0))
    cfg_case("n_positions-1e18", cfgset(n_positions=10 ** 18, n_ctx=10 ** 18))
    cfg_case("n_positions-negative", cfgset(n_positions=-64, n_ctx=-64))
    cfg_case("layer_norm_epsilon-negative", cfgset(layer_norm_epsilon=-1.0), expect=EITHER,
             note="an odd but computable epsilon: refusing it or running are both fine")
    cfg_case("no-model.safetensors", None, drop=("model.safetensors",), err=["no model.safetensors"])
    cfg_case("tokenizer.json-garbage", None, files={"tokenizer.json": junk})
    cfg_case("tokenizer.json-empty-object", None, files={"tokenizer.json": b"{}"})
    add(C, "cfg-model-is-a-file (generate)", gen(os.path.join(SH, "config.json")))
    add(C, "cfg-model-missing (generate)", gen(P("no-such-model")), err=["does not exist"])
    add(C, "cfg-model-empty-folder (classify)", ["classify", "--model", folder, "a fine film"], err=["config.json"])

    # BERT config variants through classify / embed / eval.
    def bert(name, config=None, cmd=None, files=None, drop=(), err=(), expect=FAIL, note=None):
        d = variant("bert-" + name, SENT, config=config, files=files, drop=drop)
        args = cmd(d) if cmd else ["classify", "--model", d, "a fine film"]
        add(C, "bert-%s (%s)" % (name, args[0]), args, err=err, expect=expect, note=note)
        return d

    d = bert("id2label-3", cfgset(id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2}, num_labels=3))
    add(C, "bert-id2label-3 (eval --tsv)", ["eval", "--model", d, "--tsv", dev])
    bert("hidden_size-fractional", cfgset(hidden_size=384.5), err=["whole number"])
    bert("heads-5-indivisible", cfgset(num_attention_heads=5))
    d = bert("max_position-0", cfgset(max_position_embeddings=0))
    add(C, "bert-max_position-0 (embed)", ["embed", "--model", d, "a fine film"])
    bert("type_vocab-0", cfgset(type_vocab_size=0))
    bert("intermediate-negative", cfgset(intermediate_size=-1536))
    bert("no-vocab.txt", None, drop=("vocab.txt",))
    d = bert("vocab.txt-empty", None, files={"vocab.txt": b""})
    add(C, "bert-vocab.txt-empty (embed)", ["embed", "--model", d, "a fine film"])

    def q_extra(cfg):
        cfg["quantization"]["tensors"].append("bert.no.such.weight")
    # config.json's "quantization" block is a record of what lm quantize did; the int8 tensors in
    # model.safetensors describe themselves, so a model whose record is off still loads right.
    qnote = "the quantization block is only a record; the weights describe themselves (refusing is fine too)"
    bert("quantization-unknown-tensor", q_extra, expect=EITHER, note=qnote)
    bert("quantization-block-0", lambda cfg: cfg["quantization"].update(block_size=0), expect=EITHER, note=qnote)
    bert("quantization-format-bogus", lambda cfg: cfg["quantization"].update(format="q3-bogus"), expect=EITHER, note=qnote)

    # ----- corpora ------------------------------------------------------------------------------
    C = "corpus"
    c_empty = w("corpora/empty.txt", b"")
    c_blank = w("corpora/blank.txt", "\n\n   \n\t\n\r\n\n")
    c_bad = w("corpora/bad-utf8.txt", shakespeare_text[:5000].encode() + b"\nb\xe9b\n")
    c_junk = w("corpora/junk.bin", junk)
    c_huge = w("corpora/one-huge-line.txt", "word " * 400000)
    c_crlf = w("corpora/crlf.txt", shakespeare_text[:20000].replace("\n", "\r\n"))
    c_tiny = w("corpora/tiny.txt", "hello\n")
    c_nul = w("corpora/nul.txt", ("to be or\x00not to be\n" * 2000))
    c_foreign = w("corpora/foreign.txt", "ñandú 🦆 日本語のテキスト\n" * 500)

    def train(out, corp, *extra):
        return ["train", "--corpus", corp, "--preset", "nano", "--steps", "2", "--out", P("runs", out)] + list(extra)

    add(C, "train: empty corpus", train("c-empty", c_empty), absent=[P("runs", "c-empty")])
    add(C, "train: corpus is a folder", train("c-folder", folder), err=["is a folder"])
    add(C, "train: corpus missing", train("c-missing", P("nope.txt")), err=["does not exist"])
    add(C, "train: invalid UTF-8 corpus", train("c-bad", c_bad), err=["not valid UTF-8: byte 0xE9"])
    add(C, "train: binary junk corpus", train("c-junk", c_junk), err=["not valid UTF-8"])
    add(C, "train: only blank lines", train("c-blank", c_blank))
    add(C, "train: corpus shorter than the context", train("c-tiny", c_tiny))
    add(C, "train: one 2 MB line (char tokenizer)", train("c-huge", c_huge), expect=OK,
        note="a char tokenizer has no line limit: one long line is a fine corpus")
    add(C, "train: one 2 MB line (spm tokenizer)", train("c-huge-spm", c_huge, "--tokenizer", "spm:300"),
        err=["break the text into lines"])
    add(C, "train: CRLF corpus", train("c-crlf", c_crlf), expect=OK)
    add(C, "train: CRLF corpus has the LF corpus's alphabet", train("c-crlf2", c_crlf), expect=OK,
        err=["(character-level, 58 characters)"],
        note="CRLF files read like LF files: the same text with LF line ends has 58 characters; a 59th would be U+000D")
    add(C, "train: NUL bytes in the corpus", train("c-nul", c_nul), expect=EITHER,
        note="U+0000 is valid UTF-8; a char tokenizer may learn it")
    add(C, "train: bert mlm with a char tokenizer", train("c-bert", corpus, "--arch", "bert", "--objective", "mlm", "--tokenizer", "char"))
    ftc = ["finetune", "--model", SH, "--steps", "2", "--eval-batches", "2", "--out"]
    add(C, "finetune: empty corpus", ftc + [P("runs", "ft-empty"), "--corpus", c_empty])
    add(C, "finetune: invalid UTF-8 corpus", ftc + [P("runs", "ft-bad"), "--corpus", c_bad], err=["not valid UTF-8"])
    add(C, "finetune: characters the tokenizer lacks", ftc + [P("runs", "ft-foreign"), "--corpus", c_foreign], expect=EITHER,
        note="a char tokenizer without these characters may refuse them (naming one) or skip them")
    ev = ["eval", "--model", SH, "--context", "32", "--max-chunks", "2", "--corpus"]
    add(C, "eval: empty corpus", ev + [c_empty])
    add(C, "eval: only blank lines", ev + [c_blank])
    add(C, "eval: invalid UTF-8 corpus", ev + [c_bad], err=["not valid UTF-8"])
    add(C, "eval: binary junk corpus", ev + [c_junk], err=["not valid UTF-8"])
    add(C, "eval: corpus is a folder", ev + [folder], err=["is a folder"])
    add(C, "eval: one-token corpus", ev + [w("corpora/one.txt", "a")])
    add(C, "eval: CRLF corpus", ev + [c_crlf], expect=OK, out_has=["perplexity"])
    qr = ["quantize", "--model", SH, "--report", "--context", "32", "--max-chunks", "2", "--corpus"]
    add(C, "quantize --report: empty corpus", ["quantize", "--model", SH, "--out", P("q-empty"), "--report", "--corpus", c_empty],
        absent=[P("q-empty")])
    add(C, "quantize --report: invalid UTF-8 corpus", qr + [c_bad, "--out", P("q-bad")], err=["not valid UTF-8"], absent=[P("q-bad")])
    tt = ["tokenizer", "train", "--vocab-size", "100", "--model-type", "bpe", "--input"]
    add(C, "tokenizer train: empty input", tt + [c_empty, "--output", P("tok-empty")])
    add(C, "tokenizer train: input is a folder", tt + [folder, "--output", P("tok-folder")], err=["is a folder"])
    add(C, "tokenizer train: invalid UTF-8", tt + [c_bad, "--output", P("tok-bad")], err=["not valid UTF-8"])
    add(C, "tokenizer train: only blank lines", tt + [c_blank, "--output", P("tok-blank")])
    add(C, "tokenizer train: binary junk", tt + [c_junk, "--output", P("tok-junk")])
    add(C, "tokenizer train: one 2 MB line", tt + [c_huge, "--output", P("tok-huge")])
    add(C, "tokenizer train: CRLF input", tt + [c_crlf, "--output", P("tok-crlf")], expect=OK)
    add(C, "tokenize: invalid UTF-8 stdin", ["tokenize", "--tokenizer", SH], stdin=bad_utf8, err=["stdin is not valid UTF-8: byte 0xE9"])
    add(C, "tokenize: binary junk stdin", ["tokenize", "--tokenizer", "gpt2", "--lines"], stdin=junk, err=["not valid UTF-8"])
    add(C, "tokenize: empty stdin", ["tokenize", "--tokenizer", SH, "--ids"], expect=EITHER)
    add(C, "classify: binary junk stdin", ["classify"], stdin=junk, err=["not valid UTF-8"])
    add(C, "embed: binary junk stdin", ["embed", "--model", SENT], stdin=junk, err=["not valid UTF-8"])

    def same_stdout_as(args, stdin=b""):
        def check(r):
            ref = run_lm([LM_BIN[0]] + args, input=stdin, cwd=S)
            if ref.returncode != 0:
                return "the LF reference run failed: %s" % last_lines(ref.stderr.decode("utf-8", "replace"), 1)
            if ref.stdout != r["stdout"]:
                return "stdout differs from the LF input's (%d vs %d bytes)" % (len(r["stdout"]), len(ref.stdout))
        return check

    add(C, "tokenize --lines: CRLF stdin reads like LF", ["tokenize", "--tokenizer", SH, "--lines"], stdin="to be\r\nor not\r\n",
        expect=OK, check=same_stdout_as(["tokenize", "--tokenizer", SH, "--lines"], b"to be\nor not"))

    # ----- TSVs ---------------------------------------------------------------------------------
    C = "tsv"
    t_crlf = w("tsv/crlf.tsv", "sentence\tlabel\r\nwhat a great film\t1\r\na dull mess\t0\r\n")
    t_nohdr = w("tsv/no-header.tsv", "what a great film\t1\na dull mess\t0\n")
    t_badlab = w("tsv/bad-label.tsv", "sentence\tlabel\nwhat a great film\tmaybe\na dull mess\t0\n")
    t_range = w("tsv/label-7.tsv", "sentence\tlabel\nwhat a great film\t7\na dull mess\t0\n")
    t_neg = w("tsv/label-neg.tsv", "sentence\tlabel\nwhat a great film\t-1\na dull mess\t0\n")
    t_blank = w("tsv/blank-lines.tsv", "sentence\tlabel\n\nwhat a great film\t1\n\n\na dull mess\t0\n\n")
    t_notab = w("tsv/no-tab.tsv", "sentence\tlabel\nwhat a great film 1\na dull mess 0\n")
    t_empty = w("tsv/empty.tsv", b"")
    t_hdronly = w("tsv/header-only.tsv", "sentence\tlabel\n")
    t_bad = w("tsv/bad-utf8.tsv", b"sentence\tlabel\nb\xe9b\t1\n")
    t_extra = w("tsv/extra-column.tsv", "sentence\tlabel\tidx\nwhat a great film\t1\t0\na dull mess\t0\t1\n")
    t_emptysent = w("tsv/empty-sentence.tsv", "sentence\tlabel\n\t1\na dull mess\t0\n")
    t_cols = w("tsv/other-columns.tsv", "text\tclass\nwhat a great film\t1\n")
    t_names = w("tsv/label-names.tsv", "sentence\tlabel\nwhat a great film\tpositive\na dull mess\tnegative\n")

    def accuracy_is(v):
        def check(r):
            lines_ = [ln for ln in r["stdout"].decode().splitlines() if ln.strip()]
            obj = json.loads(lines_[-1])
            if obj.get("accuracy") != v:
                return "accuracy is %r, wanted %r" % (obj.get("accuracy"), v)
        return check

    evt = ["eval", "--model", SENT, "--json", "--tsv"]
    add(C, "eval --tsv: CRLF", evt + [t_crlf], expect=OK, check=accuracy_is(1.0))
    add(C, "eval --tsv: label names", evt + [t_names], expect=OK, check=accuracy_is(1.0))
    add(C, "eval --tsv: missing header", evt + [t_nohdr], err=["header"])
    add(C, "eval --tsv: bad label", evt + [t_badlab], err=["maybe"])
    add(C, "eval --tsv: label 7 of 2 classes", evt + [t_range])
    add(C, "eval --tsv: label -1", evt + [t_neg])
    add(C, "eval --tsv: blank lines", evt + [t_blank], expect=OK, check=accuracy_is(1.0),
        note="blank lines in a TSV hold no example and are skipped, as the readers of GLUE files do")
    add(C, "eval --tsv: no tab", evt + [t_notab])
    add(C, "eval --tsv: empty file", evt + [t_empty])
    add(C, "eval --tsv: header only", evt + [t_hdronly])
    add(C, "eval --tsv: invalid UTF-8", evt + [t_bad], err=["not valid UTF-8"])
    add(C, "eval --tsv: a folder", evt + [folder], err=["is a folder"])
    add(C, "eval --tsv: extra column", evt + [t_extra], expect=EITHER)
    add(C, "eval --tsv: empty sentence", evt + [t_emptysent], expect=EITHER)
    add(C, "eval --tsv: other column names", evt + [t_cols], expect=EITHER,
        note="GLUE's layout names the columns sentence and label; another header may be read by position or refused")
    add(C, "classify --eval: CRLF", ["classify", "--eval", t_crlf], expect=OK, out_has=["accuracy"])
    add(C, "classify --eval: bad label", ["classify", "--eval", t_badlab], err=["maybe"])
    add(C, "classify --eval: missing file", ["classify", "--eval", P("nope.tsv")], err=["does not exist"])
    fcl = ["finetune", "--task", "classify", "--model", MINI, "--steps", "2", "--batch", "2"]
    add(C, "finetune classify: bad label in --train", fcl + ["--train", t_badlab, "--dev", dev, "--out", P("runs", "fc-badlab")],
        err=["maybe"], absent=[P("runs", "fc-badlab")])
    add(C, "finetune classify: header-only --train", fcl + ["--train", t_hdronly, "--dev", dev, "--out", P("runs", "fc-hdr")])
    add(C, "finetune classify: missing --dev", fcl + ["--train", dev, "--dev", P("nope.tsv"), "--out", P("runs", "fc-nodev")],
        err=["does not exist"])
    add(C, "finetune classify: label 7 with two classes", fcl + ["--train", t_range, "--dev", dev, "--out", P("runs", "fc-range")])
    add(C, "finetune classify: --labels a,a", fcl + ["--train", dev, "--dev", dev, "--labels", "a,a", "--out", P("runs", "fc-dup")])
    add(C, "finetune classify: --labels with one class", fcl + ["--train", dev, "--dev", dev, "--labels", "only", "--out", P("runs", "fc-one")])
    add(C, "finetune classify: CRLF --train and --dev", fcl + ["--train", t_crlf, "--dev", t_crlf, "--out", P("runs", "fc-crlf"), "--json"],
        expect=OK, timeout=120)
    add(C, "quantize --report: bad label --tsv", ["quantize", "--model", SENT, "--out", P("q-tsv"), "--report", "--tsv", t_badlab],
        absent=[P("q-tsv")])

    # ----- --file inputs ------------------------------------------------------------------------
    C = "file"
    f_blank = w("files/blank-runs.txt", "a wonderful film\n\n\n   \n\nawful\n\nfine\n")
    f_lf = w("files/lf.txt", "a wonderful film\nan awful, boring mess\nfine")
    f_crlf = w("files/crlf.txt", "a wonderful film\r\nan awful, boring mess\r\nfine\r\n")
    f_only_blank = w("files/only-blank.txt", "\n\n  \n\n")
    f_long = w("files/long-line.txt", "good " * 40000 + "\nbad\n")

    def json_objects(expect_errors):
        def check(r):
            objs = [json.loads(ln) for ln in r["stdout"].decode().splitlines() if ln.strip()]
            got = [isinstance(o, dict) and "error" in o for o in objs]
            if got != expect_errors:
                return "error objects at %s, wanted %s" % (got, expect_errors)
        return check

    add(C, "classify --file: blank runs give error objects", ["classify", "--json", "--batch", "2", "--file", f_blank], expect=OK,
        check=json_objects([False, True, True, True, True, False, True, False]))
    add(C, "classify --file: CRLF reads like LF", ["classify", "--json", "--file", f_crlf], expect=OK,
        check=same_stdout_as(["classify", "--json", "--file", f_lf]))
    add(C, "classify stdin: CRLF reads like LF", ["classify", "--json"], stdin=open(f_crlf, "rb").read(), expect=OK,
        check=same_stdout_as(["classify", "--json", "--file", f_lf]))
    add(C, "embed --file: CRLF reads like LF", ["embed", "--model", SENT, "--json", "--file", f_crlf], expect=OK,
        check=same_stdout_as(["embed", "--model", SENT, "--json", "--file", f_lf]))
    add(C, "embed --file: blank runs", ["embed", "--model", SENT, "--json", "--file", f_blank], expect=EITHER,
        note="blank lines may be error objects (as classify) or refused with one line")
    add(C, "classify --file: empty file", ["classify", "--file", c_empty], expect=EITHER)
    add(C, "classify --file: only blank lines", ["classify", "--json", "--file", f_only_blank], expect=EITHER)
    add(C, "classify --file: invalid UTF-8", ["classify", "--file", w("files/bad.txt", bad_utf8)], err=["not valid UTF-8: byte 0xE9", "(line 2)"])
    add(C, "embed --file: invalid UTF-8", ["embed", "--model", SENT, "--file", P("files", "bad.txt")], err=["not valid UTF-8"])
    add(C, "classify --file: a folder", ["classify", "--file", folder], err=["is a folder"])
    add(C, "classify --file: missing", ["classify", "--file", P("nope.txt")], err=["does not exist"])
    add(C, "classify --file and TEXT", ["classify", "--file", f_lf, "some text"], err=["not both"])
    add(C, "classify --file: a 200 KB line is truncated", ["classify", "--file", f_long], expect=OK, out_has=["bad"])
    add(C, "classify stdin: blank lines", ["classify", "--json"], stdin="good\n\nbad\n", expect=OK,
        check=json_objects([False, True, False]))

    # ----- option values ------------------------------------------------------------------------
    C = "options"
    g = ["generate", "--model", SH, "--prompt", "a", "--max-tokens", "2"]
    for opt, val, err, expect in [
        ("--temperature", "-1", "--temperature -1.0 is out of range", FAIL),
        ("--temperature", "nan", "--temperature", FAIL),
        ("--temperature", "inf", "--temperature", FAIL),
        ("--temperature", "1e-45", None, OK),
        ("--top-k", "-1", "--top-k", FAIL),
        ("--top-p", "2", "--top-p", FAIL),
        ("--top-p", "-0.5", "--top-p", FAIL),
        ("--top-p", "nan", "--top-p", FAIL),
        ("--min-p", "-0.1", "--min-p", FAIL),
        ("--min-p", "2", "--min-p", FAIL),
        ("--repeat-penalty", "0", "--repeat-penalty", FAIL),
        ("--repeat-penalty", "-1", "--repeat-penalty", FAIL),
        ("--repeat-penalty", "nan", "--repeat-penalty", FAIL),
        ("--repeat-last-n", "-1", "--repeat-last-n", FAIL),
        ("--repeat-last-n", "1000000000000000000", None, EITHER),
        ("--max-tokens", "-5", "--max-tokens", FAIL),
        ("--max-tokens", "0", None, EITHER),
        ("--max-tokens", "99999999999999999999", None, FAIL),
        ("--seed", "-1", None, EITHER),
        ("--threads", "0", "--threads", FAIL),
        ("--threads", "-1", "--threads", FAIL),
        ("--threads", "100000", None, EITHER),
        ("--ctx-size", "1", None, EITHER),
        ("--ctx-size", "0", "--ctx-size", FAIL),
        ("--ctx-size", "-1", "--ctx-size", FAIL),
        ("--ctx-size", "1000000000000000000", None, FAIL),
        ("-c", "-1", None, FAIL),
    ]:
        note = {"1e-45": "a temperature too small to divide by is greedy",
                "100000": "more threads than cores may be capped or refused"}.get(val)
        add(C, "generate %s %s" % (opt, val), g + [opt, val], expect=expect, err=[err] if err else [], note=note,
            out_has=["a"] if expect == OK else ())
    gi = ["generate", "--model", SH, "--max-tokens", "2", "--prompt-ids"]
    add(C, "generate --prompt-ids 1,,2", gi + ["1,,2"], err=["is empty"])
    add(C, "generate --prompt-ids -1", gi + ["-1"])
    add(C, "generate --prompt-ids 65 (vocabulary is 65)", gi + ["65"], err=["65"])
    add(C, "generate --prompt-ids 10^18", gi + ["1000000000000000000"], err=["1000000000000000000"],
        note="the message must name the id that was given, not a truncated one")
    add(C, "generate --prompt-ids 2^32+1", gi + ["4294967297"])
    add(C, "generate --prompt-ids a,b", gi + ["a,b"])
    add(C, "generate --top-k 10^18", g + ["--top-k", "1000000000000000000"], expect=EITHER)
    add(C, "generate --prompt-ids empty", gi + [""])
    add(C, "generate --prompt ''", ["generate", "--model", SH, "--max-tokens", "2", "--prompt", ""], expect=EITHER)
    add(C, "generate --prompt and --prompt-ids", ["generate", "--model", SH, "--max-tokens", "2", "--prompt", "a", "--prompt-ids", "1"])
    add(C, "generate: prompt longer than the context", ["generate", "--model", SH, "--max-tokens", "2", "--prompt", "ROMEO: " * 40],
        expect=EITHER)
    add(C, "generate --max-tokens 10^12 --ignore-eos (stopped after 3 s)",
        ["generate", "--model", SH, "--prompt", "ROMEO:", "--max-tokens", "1000000000000", "--ignore-eos", "--seed", "1"],
        expect=STREAM, timeout=3)
    add(C, "generate --unknown-option", g + ["--bogus"])
    fw = ["forward", "--model", G2, "--out", P("logits.safetensors"), "--ids"]
    add(C, "forward --ids 1,2,3 works", fw + ["1,2,3"], expect=OK)
    add(C, "forward --ids 1,,2", fw + ["1,,2"], err=["--ids: id 2 of '1,,2' is empty"])
    add(C, "forward --ids -1", fw + ["-1"])
    add(C, "forward --ids 1000 (vocabulary is 1000)", fw + ["1000"])
    add(C, "forward --ids 10^18", fw + ["1000000000000000000"], err=["1000000000000000000"],
        note="the message must name the id that was given, not a truncated one")
    add(C, "forward --ids 2^32", fw + ["4294967296"], note="2^32 must not wrap around to id 0")
    add(C, "forward --ids empty", fw + [""])
    add(C, "forward --ids 200 tokens (128 positions)", fw + [",".join(["1"] * 200)])
    add(C, "forward --batch 0", fw + ["1,2", "--batch", "0"])
    add(C, "forward --batch -1", fw + ["1,2", "--batch", "-1"])
    add(C, "forward --batch 10^18", fw + ["1,2", "--batch", "1000000000000000000"], expect=EITHER)
    add(C, "forward --threads 0", fw + ["1,2", "--threads", "0"])
    add(C, "forward --out in a missing folder", ["forward", "--model", G2, "--ids", "1", "--out", P("no", "such", "l.safetensors")])
    add(C, "forward --out a folder", ["forward", "--model", G2, "--ids", "1", "--out", folder], err=["is a folder"])
    add(C, "forward without --model", ["forward", "--ids", "1", "--out", P("l2.safetensors")])
    ch = ["chat", "--model", SH, "--max-tokens", "3", "--seed", "1"]
    add(C, "chat --max-tokens 0", ch + ["--max-tokens", "0"], stdin="hello\n", expect=EITHER)
    add(C, "chat --max-tokens -1", ch + ["--max-tokens", "-1"], stdin="hello\n")
    add(C, "chat --temperature -1", ch + ["--temperature", "-1"], stdin="hello\n", err=["--temperature"])
    add(C, "chat --top-p 2", ch + ["--top-p", "2"], stdin="hello\n")
    add(C, "chat --ctx-size 1", ch + ["--ctx-size", "1"], stdin="hello\n", expect=EITHER)
    add(C, "chat --threads 0", ch + ["--threads", "0"], stdin="hello\n")
    add(C, "chat --ctx-size 10^18", ch + ["--ctx-size", "1000000000000000000"], stdin="hello\n")
    add(C, "chat --system longer than the context", ch + ["--system", "ROMEO: " * 40], stdin="hello\n", expect=EITHER)
    be = ["bench", "--model", G2, "--reps", "1"]
    add(C, "bench --pp 0", be + ["--pp", "0", "--tg", "2"], expect=EITHER, note="llama-bench skips a test of length 0")
    add(C, "bench --pp -1", be + ["--pp", "-1", "--tg", "2"])
    add(C, "bench --tg -1", be + ["--pp", "4", "--tg", "-1"])
    add(C, "bench --reps 0", ["bench", "--model", G2, "--pp", "4", "--tg", "2", "--reps", "0"])
    add(C, "bench --pp 10^18", be + ["--pp", "1000000000000000000", "--tg", "2"])
    add(C, "bench --ctx-size 1", be + ["--pp", "4", "--tg", "2", "--ctx-size", "1"])
    add(C, "bench --random bogus", ["bench", "--random", "bogus", "--pp", "4", "--tg", "2", "--reps", "1"])
    add(C, "bench --quant int4", be + ["--pp", "4", "--tg", "2", "--quant", "int4"])
    add(C, "bench --threads 0", be + ["--pp", "4", "--tg", "2", "--threads", "0"])
    add(C, "bench --model and --random", be + ["--pp", "4", "--tg", "2", "--random", "gpt2-124m"])
    bad_train = [
        ("--steps", "0"), ("--steps", "-1"), ("--batch", "0"), ("--lr", "-1"), ("--lr", "nan"), ("--layers", "0"),
        ("--heads", "0"), ("--context", "0"), ("--dropout", "1.5"), ("--beta2", "1"), ("--clip", "-1"),
        ("--preset", "bogus"), ("--tokenizer", "spm:0"), ("--tokenizer", "spm:abc"), ("--tokenizer", "bogus"),
        ("--arch", "bogus"), ("--objective", "mlm"), ("--schedule", "bogus"), ("--optimizer", "bogus"),
        ("--grad-accum", "0"), ("--eval-interval", "0"), ("--layers", "1000000000"), ("--dim", "1000000000"),
        ("--context", "1000000000"), ("--batch", "1000000000"), ("--warmup", "-1"), ("--weight-decay", "nan"),
        ("--threads", "0"), ("--patience", "-1"), ("--eval-batches", "0"),
    ]
    for opt, val in bad_train:
        # Options checked on their own leave no folder; --context/--batch 10^9 are refused after
        # tokenizing (against the corpus and the free memory) and may leave tokens.bin behind.
        late = val == "1000000000" and opt in ("--context", "--batch")
        add(C, "train %s %s" % (opt, val), train("opt%s%s" % (opt, val.replace(":", "")), corpus, opt, val),
            absent=[] if late else [P("runs", "opt%s%s" % (opt, val.replace(":", "")))], timeout=30)
    add(C, "train --dim 30 --heads 4 (indivisible)", train("opt-dim30", corpus, "--dim", "30", "--heads", "4"))
    add(C, "train --checkpoint-interval 0", train("opt-ckpt0", corpus, "--checkpoint-interval", "0"))
    add(C, "train --log-interval 0", train("opt-log0", corpus, "--log-interval", "0"))
    add(C, "train --seed -1", train("opt-seed", corpus, "--seed", "-1"), expect=EITHER)
    add(C, "train --eval-interval 10^18", train("opt-evalbig", corpus, "--eval-interval", "1000000000000000000"), expect=EITHER)
    fto = ["finetune", "--model", SH, "--corpus", corpus, "--steps", "2", "--out"]
    add(C, "finetune --freeze 99", fto + [P("runs", "ft-f99"), "--freeze", "99"])
    add(C, "finetune --freeze a", fto + [P("runs", "ft-fa"), "--freeze", "a"])
    add(C, "finetune --freeze -2", fto + [P("runs", "ft-fm2"), "--freeze", "-2"])
    add(C, "finetune --task bogus", fto + [P("runs", "ft-task"), "--task", "bogus"])
    add(C, "finetune causal-lm without --corpus", ["finetune", "--model", SH, "--steps", "2", "--out", P("runs", "ft-nocorpus")])
    add(C, "finetune causal-lm on a BERT", ["finetune", "--model", MINI, "--corpus", corpus, "--steps", "2", "--out", P("runs", "ft-bert")])
    fcx = ["finetune", "--task", "classify", "--model", MINI, "--train", dev, "--dev", dev, "--steps", "2", "--out"]
    add(C, "finetune classify --epochs 0", fcx + [P("runs", "fc-e0"), "--epochs", "0"])
    add(C, "finetune classify --max-length 0", fcx + [P("runs", "fc-m0"), "--max-length", "0"])
    add(C, "finetune classify --pooling bogus", fcx + [P("runs", "fc-pool"), "--pooling", "bogus"])
    add(C, "finetune classify --labels ''", fcx + [P("runs", "fc-lab"), "--labels", ""])
    add(C, "finetune classify without --train", ["finetune", "--task", "classify", "--model", MINI, "--dev", dev, "--out", P("runs", "fc-notrain")])
    add(C, "finetune classify on a GPT", ["finetune", "--task", "classify", "--model", SH, "--train", dev, "--dev", dev, "--out", P("runs", "fc-gpt")])
    # quantize --report checks its options and data before it writes anything: no --out folder.
    def qo(tag, *extra):
        return ["quantize", "--model", SH, "--out", P("q-opt-" + tag), "--report", "--corpus", corpus] + list(extra)
    add(C, "quantize --split-from 1.5", qo("split15", "--split-from", "1.5"), absent=[P("q-opt-split15")])
    add(C, "quantize --split-from nan", qo("splitnan", "--split-from", "nan"), absent=[P("q-opt-splitnan")])
    add(C, "quantize --split-from -0.1", qo("splitneg", "--split-from", "-0.1"), absent=[P("q-opt-splitneg")])
    add(C, "quantize --max-chunks 0", qo("chunks0", "--max-chunks", "0"), absent=[P("q-opt-chunks0")])
    add(C, "quantize --context 0", qo("ctx0", "--context", "0"), absent=[P("q-opt-ctx0")])
    add(C, "quantize --batch 0", ["quantize", "--model", SENT, "--out", P("q-opt-batch0"), "--report", "--tsv", dev, "--batch", "0"])
    add(C, "quantize --random bogus", ["quantize", "--random", "bogus"])
    add(C, "quantize --report without data", ["quantize", "--model", SH, "--out", P("q-opt-nodata"), "--report"],
        absent=[P("q-opt-nodata")])
    add(C, "quantize without --model or --random", ["quantize", "--out", P("q-opt-nomodel")])
    add(C, "quantize a .gguf", ["quantize", "--model", VOCAB_GGUF, "--out", P("q-opt-gguf")])
    add(C, "quantize an int8 model", ["quantize", "--model", SENT, "--out", P("q-int8")], expect=EITHER)
    eo = ["eval", "--model", SH, "--corpus", corpus]
    add(C, "eval --split-from -0.1", eo + ["--split-from", "-0.1"])
    add(C, "eval --split-from 1", eo + ["--split-from", "1"])
    add(C, "eval --context 1", eo + ["--context", "1"], expect=EITHER)
    add(C, "eval --context 0", eo + ["--context", "0"])
    add(C, "eval --max-chunks -1", eo + ["--max-chunks", "-1"])
    add(C, "eval --max-chunks 0", eo + ["--max-chunks", "0"])
    add(C, "eval --max-chunks 10^18", eo + ["--context", "32", "--max-chunks", "1000000000000000000"], expect=EITHER)
    add(C, "eval --batch 0", ["eval", "--model", SENT, "--tsv", dev, "--batch", "0"])
    add(C, "eval --corpus and --tsv", eo + ["--tsv", dev])
    add(C, "eval without --corpus or --tsv", ["eval", "--model", SH])
    add(C, "eval --tsv on a GPT", ["eval", "--model", SH, "--tsv", dev])
    add(C, "eval --corpus on a BERT", ["eval", "--model", SENT, "--corpus", corpus])
    em = ["embed", "--model", SENT]
    add(C, "embed --max-length 0", em + ["--max-length", "0", "a film"])
    add(C, "embed --max-length -1", em + ["--max-length", "-1", "a film"])
    add(C, "embed --max-length 10^18", em + ["--max-length", "1000000000000000000", "a film"], expect=EITHER)
    add(C, "embed --batch 0", em + ["--batch", "0", "a film"])
    add(C, "embed --batch 10^18", em + ["--batch", "1000000000000000000", "a film"], expect=EITHER)
    add(C, "embed --model a GPT", ["embed", "--model", SH, "a film"])
    add(C, "embed ''", em + [""], expect=EITHER)
    add(C, "classify --max-length 0", ["classify", "--max-length", "0", "a film"])
    add(C, "classify --max-length 10^18", ["classify", "--max-length", "1000000000000000000", "a film"], expect=EITHER)
    add(C, "classify --batch -3", ["classify", "--batch", "-3", "good"], err=["--batch must be ≥ 1"])
    add(C, "classify --batch 10^18", ["classify", "--batch", "1000000000000000000", "good"], expect=EITHER)
    add(C, "classify --model a GPT", ["classify", "--model", SH, "a film"])
    add(C, "classify ''", ["classify", ""], expect=EITHER)
    add(C, "classify --top-k --json", ["classify", "--top-k", "--json", "a dull, lifeless mess"], expect=OK, out_has=["negative"])
    tk = ["tokenize", "--tokenizer", SH, "--decode"]
    add(C, "tokenize --decode 1,,2", tk + ["1,,2"])
    add(C, "tokenize --decode -1", tk + ["-1"])
    add(C, "tokenize --decode 99999 (vocabulary is 65)", tk + ["99999"])
    add(C, "tokenize --decode 10^18", tk + ["1000000000000000000"])
    add(C, "tokenize --decode 2^32+1", tk + ["4294967297"])
    add(C, "tokenize --decode abc", tk + ["abc"])
    add(C, "tokenize --tokenizer missing", ["tokenize", "--tokenizer", P("nope"), "hi"])
    add(C, "tokenize --tokenizer an empty folder", ["tokenize", "--tokenizer", folder, "hi"])
    add(C, "tokenize --tokenizer junk .model", ["tokenize", "--tokenizer", w("junk.model", junk), "hi"])
    add(C, "tokenize --tokenizer folder with junk tokenizer.json",
        ["tokenize", "--tokenizer", os.path.dirname(w("tokjunk/tokenizer.json", junk)), "hi"])
    add(C, "tokenize --tokenizer empty vocab.txt", ["tokenize", "--tokenizer", os.path.dirname(w("tokempty/vocab.txt", b"")), "hi"])
    ttr = ["tokenizer", "train", "--input", corpus, "--model-type", "bpe", "--output", P("tok-opt")]
    for opt, val in [("--vocab-size", "0"), ("--vocab-size", "-1"), ("--vocab-size", "1000000000000000000"),
                     ("--character-coverage", "2"), ("--character-coverage", "nan"), ("--max-piece-length", "0"),
                     ("--input-sentence-size", "-1"), ("--normalization", "bogus"), ("--threads", "0")]:
        extra = [] if opt == "--vocab-size" else ["--vocab-size", "100"]
        add(C, "tokenizer train %s %s" % (opt, val), ttr + extra + [opt, val], absent=[P("tok-opt")])
    add(C, "tokenizer train --model-type bogus", ["tokenizer", "train", "--input", corpus, "--vocab-size", "100",
                                                  "--model-type", "bogus", "--output", P("tok-opt")])

    # ----- output problems ----------------------------------------------------------------------
    C = "output"
    printing = [
        ("generate", ["generate", "--model", SH, "--prompt", "ROMEO:", "--max-tokens", "5", "--seed", "1"], b"", False),
        ("generate --json", ["generate", "--model", G2, "--prompt-ids", "1,2", "--max-tokens", "3", "--json"], b"", True),
        ("chat", ["chat", "--model", SH, "--max-tokens", "3", "--seed", "1"], b"hello\n", False),
        ("chat --json", ["chat", "--model", SH, "--max-tokens", "3", "--json"], b"hello\n", False),
        ("bench", ["bench", "--model", G2, "--pp", "4", "--tg", "2", "--reps", "1"], b"", True),
        ("train --json", ["train", "--corpus", corpus, "--preset", "nano", "--steps", "2", "--json", "--out", None], b"", True),
        ("finetune --json", ["finetune", "--model", SH, "--corpus", corpus, "--steps", "2", "--eval-batches", "2", "--json", "--out", None], b"", True),
        ("quantize --json", ["quantize", "--model", SH, "--json", "--out", None], b"", True),
        ("eval --corpus", ["eval", "--model", SH, "--corpus", corpus, "--context", "32", "--max-chunks", "2"], b"", True),
        ("eval --tsv", ["eval", "--model", SENT, "--tsv", dev], b"", True),
        ("inspect (folder)", ["inspect", SH], b"", False),
        ("inspect --json (gguf)", ["inspect", "--json", VOCAB_GGUF], b"", False),
        ("embed", ["embed", "--model", SENT, "a cat sits on the mat"], b"", False),
        ("embed --file", ["embed", "--model", SENT, "--file", lines], b"", True),
        ("classify", ["classify", "a fine film"], b"", False),
        ("classify --file --json", ["classify", "--json", "--file", lines], b"", True),
        ("classify --eval", ["classify", "--eval", dev], b"", True),
        ("tokenize", ["tokenize", "--tokenizer", SH, "hello there"], b"", False),
        ("tokenize --lines", ["tokenize", "--tokenizer", SH, "--lines"], b"hello\nthere\n", False),
        ("tokenize --decode", ["tokenize", "--tokenizer", "gpt2", "--decode", "15496 995"], b"", False),
        ("tokenizer train --json", ["tokenizer", "train", "--input", corpus, "--vocab-size", "100", "--model-type", "bpe", "--json", "--output", None], b"", True),
        ("forward", ["forward", "--model", G2, "--ids", "1,2", "--out", None], b"", True),
        ("--help", ["--help"], b"", False),
        ("generate --help", ["generate", "--help"], b"", False),
        ("--version", ["--version"], b"", False),
    ]
    n = [0]

    def fresh(label):
        def f():
            n[0] += 1
            return P("out-%d-%s" % (n[0], label.split()[0]))
        return f

    def still_devices(r):
        # Found by this suite: forward wrote --out atomically (a temporary file renamed over it),
        # and as root that rename REPLACED the /dev/full device node with a regular file. A path
        # that is not a regular file is now written in place.
        for dev in ("/dev/full", "/dev/null"):
            if not __import__("stat").S_ISCHR(os.stat(dev).st_mode):
                return "%s is no longer a device after the write" % dev
        return None

    for label, args, stdin, progress in printing:
        args_ = [a if a is not None else fresh(label) for a in args]
        if label == "forward":
            # forward writes a file; its stdout has nothing to fail on — its --out is the output.
            add(C, "forward --out /dev/full", ["forward", "--model", G2, "--ids", "1,2", "--out", "/dev/full"],
                err=["/dev/full"], check=still_devices)
            add(C, "forward --out /dev/null", ["forward", "--model", G2, "--ids", "1,2", "--out", "/dev/null"],
                expect=OK, check=still_devices)
            continue
        add(C, "%s >/dev/full" % label, args_, stdin=stdin, out="devfull", expect=DEVFULL, err=["cannot write the output"])
        add(C, "%s >closed pipe" % label, args_, stdin=stdin, out="closed", expect=PIPE, pipe_quiet_only=progress,
            note="progress and notes on stderr come before the first write; only a word about the pipe is wrong"
            if progress else None)

    # ----- output folders -----------------------------------------------------------------------
    C = "folders"
    mc = copy("model-copy", SH)
    g2c = copy("gpt2-copy", G2)
    sc = P("sentiment-copy")
    os.makedirs(sc)
    for f in os.listdir(SENT):
        if f == "model.safetensors":
            os.symlink(os.path.join(SENT, f), os.path.join(sc, f))  # 24 MB: the folder's own files are what must not change
        else:
            shutil.copy(os.path.join(SENT, f), sc)
    add(C, "train --out a model folder", train("x", corpus)[:-1] + [mc], unchanged=[mc], err=["did not make"])
    add(C, "finetune --out equal to --model", ["finetune", "--model", mc, "--corpus", corpus, "--steps", "2", "--out", mc],
        unchanged=[mc], err=["is the model"])
    add(C, "finetune --out equal to --model via ..", ["finetune", "--model", mc, "--corpus", corpus, "--steps", "2",
                                                      "--out", mc + "/../model-copy", "--overwrite"], unchanged=[mc], err=["is the model"])
    add(C, "finetune --out equal to --model via a symlink", ["finetune", "--model", mc, "--corpus", corpus, "--steps", "2",
                                                             "--out", P("link-to-model-copy"), "--overwrite"],
        before=lambda: os.path.lexists(P("link-to-model-copy")) or os.symlink(mc, P("link-to-model-copy")), unchanged=[mc],
        err=["is the model"])
    add(C, "quantize --out equal to --model", ["quantize", "--model", mc, "--out", mc], unchanged=[mc], err=["is the model"])
    add(C, "quantize --out equal to --model --overwrite", ["quantize", "--model", mc, "--out", mc, "--overwrite"], unchanged=[mc],
        err=["is the model"])
    add(C, "quantize --out another model folder", ["quantize", "--model", mc, "--out", g2c], unchanged=[g2c], err=["did not make"])
    add(C, "finetune classify --out equal to --model", ["finetune", "--task", "classify", "--model", sc, "--train", dev, "--dev", dev,
                                                        "--out", sc], unchanged=[sc], err=["is the model"])
    add(C, "tokenizer train --output a model folder without a tokenizer",
        ["tokenizer", "train", "--input", corpus, "--vocab-size", "100", "--model-type", "bpe", "--output", g2c],
        unchanged=[os.path.join(g2c, f) for f in os.listdir(g2c)], expect=EITHER,
        note="adding tokenizer.model beside weights that have none may be what one wants; the model's own files stay")
    lt = copy("llama-tiny-copy", os.path.join(shared, "fixtures", "llama-tiny", "model"))
    for base, dirs, files in os.walk(lt):
        for f in files + dirs:
            os.chmod(os.path.join(base, f), 0o755 if f in dirs else 0o644)
    add(C, "tokenizer train --output a model folder with its tokenizer.model",
        ["tokenizer", "train", "--input", corpus, "--vocab-size", "100", "--model-type", "bpe", "--output", lt], unchanged=[lt])
    af = w("out-is-a-file", "precious\n")
    add(C, "train --out a file", train("x", corpus)[:-1] + [af], unchanged=[af])
    add(C, "finetune --out a file", ["finetune", "--model", mc, "--corpus", corpus, "--steps", "2", "--out", af], unchanged=[af])
    add(C, "quantize --out a file", ["quantize", "--model", mc, "--out", af], unchanged=[af])
    add(C, "tokenizer train --output a file", ["tokenizer", "train", "--input", corpus, "--vocab-size", "100", "--model-type", "bpe",
                                               "--output", af], unchanged=[af])
    add(C, "train --out under a file", train("x", corpus)[:-1] + [af + "/run"], unchanged=[af])
    add(C, "train --resume in an empty folder", ["train", "--corpus", corpus, "--out", folder, "--resume", "--steps", "2"])
    add(C, "train --resume in a missing folder", ["train", "--corpus", corpus, "--out", P("no-run"), "--resume", "--steps", "2"])

    # Two runs, one folder: the second is refused and names the first's pid.
    lock_run = P("runs", "locked")

    def start_lock_run():
        if "lock" in procs:
            return
        p = popen([LM_BIN[0], "train", "--corpus", TS, "--preset", "nano", "--steps", "100000", "--out", lock_run,
                              "--threads", "1", "--checkpoint-interval", "5"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=S)
        procs["lock"] = p
        deadline = time.time() + 60
        while not os.path.exists(os.path.join(lock_run, "checkpoint.safetensors")) and time.time() < deadline:
            if p.poll() is not None:
                raise RuntimeError("the background run exited with %s" % p.returncode)
            time.sleep(0.05)

    def lock_pid():
        return "is in use by another lm process (pid %d)" % procs["lock"].pid

    def stop_lock_run():
        p = procs.pop("lock", None)
        if p:
            p.kill()
            p.wait()

    small = w("small.txt", shakespeare_text[:30000])
    for label, extra in [("a second train", []), ("--resume while it runs", ["--resume"]), ("--overwrite while it runs", ["--overwrite"])]:
        add(C, "lock: %s into one --out" % label, ["train", "--corpus", TS, "--preset", "nano", "--steps", "10", "--out", lock_run] + extra,
            before=start_lock_run, err=[lock_pid])
    add(C, "lock: finetune into a running run's --out", ["finetune", "--model", SH, "--corpus", corpus, "--steps", "2", "--out", lock_run,
                                                        "--overwrite"], before=start_lock_run, err=[lock_pid])
    add(C, "lock: quantize into a running run's --out", ["quantize", "--model", SH, "--out", lock_run, "--overwrite"],
        before=start_lock_run, err=[lock_pid], after=stop_lock_run)

    # kill -9 during training, then --resume works (no stale lock, the checkpoint is whole).
    k9 = P("runs", "kill9")
    k9state = {}

    def kill9():
        p = popen([LM_BIN[0], "train", "--corpus", small, "--preset", "nano", "--steps", "100000", "--out", k9,
                              "--threads", "1", "--checkpoint-interval", "3"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=S)
        deadline = time.time() + 60
        ck = os.path.join(k9, "checkpoint.safetensors")
        while not os.path.exists(ck) and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)   # into the middle of more steps (and perhaps a checkpoint write)
        p.send_signal(signal.SIGKILL)
        p.wait()
        meta = read_st(ck)[0]["__metadata__"]
        k9state["step"] = json.loads(meta["trainer_state"])["step"]

    add(C, "kill -9 during training, then --resume", lambda: ["train", "--corpus", small, "--out", k9, "--resume", "--steps",
                                                              str(k9state["step"] + 2)],
        before=kill9, expect=OK, err_not=["in use"], check=lambda r: None if "done" in r["stderr"] or r["status"] == 0 else "not resumed")

    # A stale checkpoint.safetensors.tmp-PID (a save killed half-way) is cleaned by --resume.
    st_run = P("runs", "stale")
    stale = os.path.join(st_run, "checkpoint.safetensors.tmp-999999")

    def stale_setup():
        r = run_lm([LM_BIN[0], "train", "--corpus", small, "--preset", "nano", "--steps", "2", "--out", st_run, "--threads", "1"], cwd=S)
        if r.returncode != 0:
            raise RuntimeError("setup run failed: %s" % r.stderr.decode()[-300:])
        with open(stale, "wb") as f:
            f.write(b"partial")

    add(C, "stale checkpoint.safetensors.tmp-PID cleaned by --resume",
        ["train", "--corpus", small, "--out", st_run, "--resume", "--steps", "4", "--threads", "1"],
        before=stale_setup, expect=OK, absent=[stale])
    add(C, "--resume with another corpus", ["train", "--corpus", corpus, "--out", st_run, "--resume", "--steps", "6"],
        err=["is not the corpus this run trained on"])

    def damage(kind):
        def f():
            ck = os.path.join(st_run, "checkpoint.safetensors")
            with open(ck, "rb") as fh:
                b = fh.read()
            bad = P("runs", "damaged-" + kind)
            if os.path.exists(bad):
                shutil.rmtree(bad)
            shutil.copytree(st_run, bad)
            with open(os.path.join(bad, "checkpoint.safetensors"), "wb") as fh:
                fh.write(b[:len(b) // 2] if kind == "truncated" else junk)
        return f

    for kind in ("truncated", "garbage"):
        add(C, "--resume with a %s checkpoint" % kind, ["train", "--corpus", small, "--out", P("runs", "damaged-" + kind), "--resume",
                                                        "--steps", "8"], before=damage(kind))

    # ----- chat, piped --------------------------------------------------------------------------
    C = "chat"
    sess = P("chat", "session.json")
    os.makedirs(P("chat"))

    def saved(kind):
        def f():
            if not os.path.exists(sess):
                r = run_lm([LM_BIN[0], "chat", "--model", SH, "--max-tokens", "3", "--seed", "1"],
                           input=("hello\n/save %s\n" % sess).encode(), cwd=S)
                if r.returncode != 0:
                    raise RuntimeError("could not save a session: %s" % r.stderr.decode()[-300:])
            with open(sess, "rb") as fh:
                js = fh.read()
            kv = sess.replace(".json", ".kv.safetensors")
            with open(kv, "rb") as fh:
                kvb = fh.read()
            target = P("chat", kind + ".json")
            obj = json.loads(js)
            kvname = kind + ".kv.safetensors"
            obj["cache"]["file"] = kvname
            good = json.dumps(obj).encode()
            content, kvcontent = {
                "json-cut": (good[:len(good) // 2], kvb),
                "json-garbage": (junk, kvb),
                "json-not-session": (b'{"hello": "world"}', kvb),
                "kv-cut": (good, kvb[:len(kvb) // 2]),
                "kv-garbage": (good, junk),
                "kv-missing": (good, None),
                "tokens-beyond-vocab": (json.dumps(dict(obj, tokens=[99999] * len(obj["tokens"]))).encode(), kvb),
            }[kind]
            with open(target, "wb") as fh:
                fh.write(content)
            if kvcontent is not None:
                with open(P("chat", kvname), "wb") as fh:
                    fh.write(kvcontent)
        return f

    cht = ["chat", "--model", SH, "--max-tokens", "3", "--seed", "1"]
    add(C, "chat: /save then /load works", cht, stdin="hello\n/save %s\n/load %s\nagain\n" % (P("chat", "ok.json"), P("chat", "ok.json")),
        expect=OK, out_has=["loaded 1 turn"])
    add(C, "chat: /load a session whose KV cache is missing", cht, stdin="/load %s\nhello\n" % P("chat", "kv-missing.json"),
        before=saved("kv-missing"), expect=OK, err=["is missing: encoding the 11 tokens of the context again"],
        note="the transcript is whole: encoding it again is the right recovery (with a note)")
    for kind, why in (("json-cut", "not a swift-lm chat session"), ("json-garbage", "not a swift-lm chat session"),
                      ("json-not-session", "not a swift-lm chat session"), ("kv-cut", "is not the KV cache saved with"),
                      ("kv-garbage", "is not the KV cache saved with"), ("tokens-beyond-vocab", "outside the vocabulary")):
        add(C, "chat: /load a session with %s" % kind, cht, stdin="/load %s\nhello\n" % P("chat", kind + ".json"), before=saved(kind),
            err=[why, "1 of the piped lines failed"])
    add(C, "chat: /load a missing file", cht, stdin="/load %s\nhello\n" % P("chat", "nope.json"), err=["no such file"])
    add(C, "chat: /load a folder", cht, stdin="/load %s\nhello\n" % folder, err=["is a folder"])
    add(C, "chat: /load a model file", cht, stdin="/load %s\nhello\n" % os.path.join(SH, "model.safetensors"),
        err=["not a swift-lm chat session"])
    add(C, "chat: /save to a missing folder", cht, stdin="hello\n/save %s\n" % P("no", "dir", "s.json"), err=["does not exist"])
    add(C, "chat: /save to a folder", cht, stdin="hello\n/save %s\n" % folder, err=["is a folder"])
    add(C, "chat: invalid UTF-8 line", cht, stdin=b"hello\nb\xe9b\nbye\n", err=["not valid UTF-8"])
    add(C, "chat --json: invalid UTF-8 line", cht + ["--json"], stdin=b"b\xe9b\n", err=["not valid UTF-8"])
    add(C, "chat: unknown command", cht, stdin="/bogus\nhello\n", err=["/bogus"])
    add(C, "chat: /model PATH", cht, stdin="/model %s\nhello\n" % G2, err=["/model shows what is loaded"])
    add(C, "chat: /show with arguments", cht, stdin="/show everything\n", err=["/show takes no arguments"])
    add(C, "chat: /set bogus 1", cht, stdin="/set bogus 1\nhello\n", err=["unknown setting 'bogus'"])
    add(C, "chat: /set temperature -1", cht, stdin="/set temperature -1\nhello\n", err=["out of range"])
    add(C, "chat: /set temperature nan", cht, stdin="/set temperature nan\nhello\n", err=["temperature"])
    add(C, "chat: /set max_tokens 1e30", cht, stdin="/set max_tokens 1e30\nhello\n", err=["max_tokens"])
    add(C, "chat: /set top_p", cht, stdin="/set top_p\nhello\n", err=["/set NAME VALUE"])
    add(C, "chat: /undo with nothing said", cht, stdin="/undo\n", expect=EITHER)
    add(C, "chat: /regen with nothing said", cht, stdin="/regen\n", expect=EITHER)
    add(C, "chat: only blank lines", cht, stdin="\n\n\n", expect=EITHER)
    add(C, "chat: a 50 KB line (64-token context)", cht, stdin="to be or not " * 4000 + "\n", expect=EITHER, timeout=60)
    add(C, "chat: NUL in a line", cht, stdin="a\x00b\n", expect=EITHER)
    add(C, "chat: unterminated \"\"\" block", cht, stdin='"""\nabc\n', expect=EITHER)
    add(C, "chat: a lone /", cht, stdin="/\n", expect=EITHER)
    add(C, "chat: /quit then more lines", cht, stdin="/quit\nhello\n", expect=OK)

    # ----- arguments and help -------------------------------------------------------------------
    C = "arguments"
    add(C, "help bogus", ["help", "bogus"], err=["'bogus' is not a command of 'lm'"])
    add(C, "help train bogus", ["help", "train", "bogus"], err=["has no subcommand 'bogus'"])
    add(C, "unknown subcommand", ["bogus"])
    add(C, "invalid UTF-8 argument (generate --prompt)", ["generate", "--model", SH, "--prompt", b"b\xe9b"], err=["not valid UTF-8: byte 0xE9"])
    add(C, "invalid UTF-8 argument (classify TEXT)", ["classify", b"b\xe9b"], err=["not valid UTF-8"])
    add(C, "invalid UTF-8 argument (a path)", ["inspect", P("b").encode() + b"\xe9"], err=["not valid UTF-8"])
    add(C, "missing required option (forward)", ["forward", "--ids", "1"])
    add(C, "inspect without a path", ["inspect"])
    add(C, "inspect a missing path", ["inspect", P("nope")], err=["does not exist"], err_not=["--model"],
        note="lm inspect takes a PATH argument; it has no --model option to suggest")
    add(C, "inspect a text file", ["inspect", a_file])
    return cases


class _Delete:
    pass


DELETE = _Delete()
LM_BIN = [None]


def main():
    ap = argparse.ArgumentParser(description="Run lm against hostile inputs and check that it fails cleanly.")
    ap.add_argument("--lm", help="the lm binary (default: .build/release/lm if present, else .build/debug/lm)")
    ap.add_argument("--shared", help="the shared data folder (default: $LM_SHARED or ../shared beside the checkout)")
    ap.add_argument("--only", help="run only the cases whose name contains this")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout (the text goes to stderr)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--verbose", action="store_true", help="print every case as it runs")
    opts = ap.parse_args()

    lm = opts.lm
    if not lm:
        for rel in (".build/release/lm", ".build/debug/lm"):
            if os.access(os.path.join(ROOT, rel), os.X_OK):
                lm = os.path.join(ROOT, rel)
                break
    if not lm or not os.access(lm, os.X_OK):
        sys.exit("bad-input suite: no lm binary (build it: swift build --product lm, or pass --lm)")
    lm = os.path.abspath(lm)
    LM_BIN[0] = lm
    shared = opts.shared or os.environ.get("LM_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
    shared = os.path.abspath(shared)

    text = sys.stderr if opts.json else sys.stdout
    scratch = tempfile.mkdtemp(prefix="lm-badinput-")
    env = dict(os.environ, NO_COLOR="1", LM_HISTORY=os.path.join(scratch, "history"))
    procs = {}
    results = []
    t0 = time.time()
    try:
        cases = build(scratch, shared, procs)
        names = set()
        for c in cases:
            assert c.name not in names, "duplicate case name " + c.name
            names.add(c.name)
        if opts.only:
            cases = [c for c in cases if opts.only in c.name]
        runner = Runner(lm, scratch, env)
        for c in cases:
            try:
                res = runner.run(c)
            except Exception as e:
                res = {"name": c.name, "category": c.cat, "expect": c.expect, "passed": False, "status": None,
                       "command": "lm " + c.name, "crash": False, "exit0_on_failure": False,
                       "reasons": ["the case could not run: %s: %s" % (type(e).__name__, e)], "stderr_tail": []}
            results.append(res)
            if opts.verbose:
                print("%-5s %6.2fs %s" % ("ok" if res["passed"] else "FAIL", res.get("seconds", 0), c.name), file=text, flush=True)
            if not res["passed"]:
                print("FAIL [%s] %s\n  command: %s\n  status: %s\n  why: %s\n  stderr: %s" % (
                    res["category"], res["name"], res.get("command"), res.get("status"), "; ".join(res["reasons"]),
                    " | ".join(res.get("stderr_tail") or []) or "(empty)"), file=text, flush=True)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        if not opts.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print("scratch folder kept: %s" % scratch, file=text)

    ran = [r for r in results if "skipped" not in r]
    skipped = [r for r in results if "skipped" in r]
    passed = sum(1 for r in ran if r["passed"])
    failed = len(ran) - passed
    crashes = sum(1 for r in ran if r["crash"])
    exit0 = sum(1 for r in ran if r["exit0_on_failure"])
    for r in skipped:
        print("skipped: %s (%s)" % (r["name"], r["skipped"]), file=text)
    print("%d crashes, %d exit-0-on-failure, %d skipped, %.0f s" % (crashes, exit0, len(skipped), time.time() - t0), file=text)
    print("%d passed, %d failed" % (passed, failed), file=text, flush=True)
    if opts.json:
        print(json.dumps({"passed": passed, "failed": failed, "crashes": crashes, "exit0_on_failure": exit0,
                          "skipped": len(skipped), "seconds": round(time.time() - t0, 1), "lm": lm, "cases": results}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
