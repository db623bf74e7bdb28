#!/usr/bin/env python3
"""Reruns issue 18's audit classes of probes and counts what became of each.

    cmake --build build --target structured_output discrete_vae probe_misuse
    tests/probes/probe.py [--build build] [--timeout 120] [--only flags|checkpoints|misuse]

Classes: library misuse (build/tests/probe_misuse, one process each), bad flags of both
programs (and --resume with flags other than the checkpoint's), doctored checkpoint entries
with valid CRCs (then --resume). Every probe is something that must be refused. Outcomes:
  crash    killed by a signal, or a sanitizer report on stderr
  hang     still running at the timeout
  silent   exit 0 (or a normal-looking result) where an error was due
  unnamed  refused (exit 2) without naming the flag, entry or op, or the value given
  refused  exit 2 with one line naming the thing
  other    any other status (3: non-finite loss, ...)
Runs on small synthetic MNIST files it writes (no download); takes a few minutes. Not run by CI.
"""
import argparse, collections, os, shutil, struct, subprocess, sys, tempfile, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_idx(path, dims, data):
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data))


def write_data(d):
    os.makedirs(d, exist_ok=True)
    state = [12345]

    def rnd():
        state[0] = (state[0] * 1103515245 + 12345) % (1 << 31)
        return state[0] >> 8

    for name, n in (("train", 400), ("t10k", 100)):
        write_idx(os.path.join(d, name + "-images-idx3-ubyte"), [n, 28, 28], [255 if rnd() % 10 < 3 else 0 for _ in range(n * 784)])
        write_idx(os.path.join(d, name + "-labels-idx1-ubyte"), [n], [i % 10 for i in range(n)])


class Runner:
    def __init__(self, timeout):
        self.timeout = timeout
        self.counts = collections.OrderedDict()
        self.cases = collections.defaultdict(list)

    def record(self, cls, outcome, what, detail=""):
        self.counts.setdefault(cls, collections.Counter())[outcome] += 1
        if outcome != "refused":
            self.cases[cls].append((outcome, what, detail.strip().splitlines()[-1] if detail.strip() else ""))

    def run(self, argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, errors="replace")
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return None, "", ""

    def judge(self, cls, what, argv, names, program=None):
        """One probe that must be refused with exit 2 and a line naming each of names."""
        status, out, err = self.run(argv)
        if status is None:
            outcome = "hang"
        elif status < 0 or "Sanitizer" in err or "runtime error:" in err:
            outcome = "crash"
        elif status == 0:
            outcome = "silent"
        elif status == 2:
            text = err if program else out
            one_line = not program or (err.count("\n") == 1 and err.startswith(program + ": "))
            outcome = "refused" if one_line and all(n in text for n in names) else "unnamed"
        else:
            outcome = "other"
        self.record(cls, outcome, what, (err or out) + ("" if status is None else "\n[exit %s] " % status + (err or out).strip()[-160:]))
        return outcome


# ---- bad flags ---------------------------------------------------------------------------

REALS = {  # flag: values that must be refused (each named in the message with the flag)
    "--lr": ["0", "-1", "nan", "inf", "-inf", "1e39", "1e-39", "1e-45", "1e-50", "1e400", "abc", "0x", "1e", "--"],
    "--tau": ["0", "-0.5", "nan", "inf", "1e39", "1e-39", "1e-45", "1e-50", "x"],
    "--tau-min": ["0", "-1", "nan", "inf", "1e-45", "1e-50", "1e39"],
    "--anneal-rate": ["-1", "nan", "inf", "1e39", "1e-45", "1e-50", "-1e-50"],
    "--momentum": ["1", "1.5", "-0.1", "0.99999999", "nan", "inf", "1e-45", "1e-50"],
}
COUNTS = {  # common and per-program counts
    "--epochs": ["-1", "1e3", "12abc", "1000001", "99999999999999999999", "", "0x10", " 5"],
    "--batch-size": ["0", "-5", "1000001", "2.5", "301"],
    "--max-steps": ["-1", "18446744073709551615", "1099511627777"],
    "--seed": ["-3", "18446744073709551616", "1.5"],
    "--threads": ["0", "257", "-1"],
    "--validation": ["0", "60000", "-1", "400"],
    "--val-samples": ["-1", "100001", "1e9"],
    "--eval-samples": ["-1", "100001", "1e9"],
    "--anneal-every": ["0", "-1", "1099511627777"],
}
SO_ONLY = {"--hidden": ["0", "99999999999", "-20"], "--samples": ["0", "10001", "-1"]}
CHOICES = {"--optimizer": ["rmsprop", "", "ADAM"], "--latent": ["gaussian", "Bernoulli"], "--estimator": ["GS", "gumbel-softmax"]}


def flag_probes(runner, programs, data, work):
    for prog, base in programs:
        name = os.path.basename(prog)
        reals = dict(REALS)
        counts = dict(COUNTS, **(SO_ONLY if name == "structured_output" else {}))
        choices = dict(CHOICES, **({"--binarize": ["x", "none"]} if name == "structured_output" else {}))
        probes = []
        for flag, values in list(reals.items()) + list(counts.items()) + list(choices.items()):
            for v in values:
                extra = ["--optimizer", "sgd"] if flag == "--momentum" else []
                probes.append(([flag, v] + extra, [flag] + ([v] if v.strip() else [])))
        probes += [(["--tau", "0.2"], ["--tau", "0.2", "--tau-min"]), (["--frobnicate"], ["frobnicate"]),
                   (["extra-positional"], ["extra-positional"]), (["--data", os.path.join(work, "missing")], ["missing"])]
        if name == "structured_output":
            probes += [(["--latent", "categorical", "--hidden", "205"], ["--hidden", "205"]),
                       (["--samples", "10000", "--batch-size", "100000"], ["--samples"])]
        for args, names in probes:
            out = os.path.join(work, "flags-out")
            shutil.rmtree(out, ignore_errors=True)
            runner.judge("flags", name + " " + " ".join(args), [prog] + base + ["--out", out] + args, names, name)
        # --resume with other values for the flags the checkpoint fixes
        out = os.path.join(work, "resume-" + name)
        shutil.rmtree(out, ignore_errors=True)
        status, _, err = runner.run([prog] + base + ["--out", out, "--optimizer", "sgd", "--anneal-rate", "1e-4"])
        if status != 0:
            sys.exit("probe.py: the reference run of %s failed: %s" % (name, err))
        changed = [("--lr", "0.002"), ("--momentum", "0.5"), ("--tau", "0.9"), ("--tau-min", "0.3"),
                   ("--anneal-rate", "0.0002"), ("--anneal-every", "7"), ("--optimizer", "adam"), ("--seed", "9"),
                   ("--validation", "150"), ("--batch-size", "60"), ("--latent", "categorical"), ("--estimator", "st-gs")]
        if name == "structured_output":
            changed += [("--hidden", "30"), ("--samples", "2"), ("--binarize", "threshold")]
        for flag, v in changed:
            args = [a for a in base]
            if flag in args:
                i = args.index(flag)
                del args[i:i + 2]
            rest = {"--optimizer": "sgd", "--anneal-rate": "1e-4"}
            rest.pop(flag, None)
            extra = [x for kv in rest.items() for x in kv]
            runner.judge("flags", name + " --resume " + flag + " " + v,
                         [prog] + args + ["--out", out, "--epochs", "2", "--resume", flag, v] + extra, [flag, v], name)


# ---- doctored checkpoints ------------------------------------------------------------------

def read_npy(blob):
    hlen = struct.unpack("<H", blob[8:10])[0] if blob[6] == 1 else struct.unpack("<I", blob[8:12])[0]
    start = (10 if blob[6] == 1 else 12) + hlen
    header = blob[:start].decode("latin1")
    descr = header.split("'descr': '")[1].split("'")[0]
    shape = header.split("'shape': (")[1].split(")")[0]
    dims = [int(x) for x in shape.replace(" ", "").split(",") if x]
    return descr, dims, blob[start:]


def write_npy(descr, dims, data):
    shape = "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


def doctorings(name, descr, dims, data):
    """(label, new entry bytes or None to drop it) for one entry: each must be refused."""
    fmt = {"<i8": "q", "<u8": "Q", "<f4": "f"}[descr]
    size = struct.calcsize(fmt)
    n = len(data) // size
    vals = list(struct.unpack("<%d%s" % (n, fmt), data))
    out = [("dropped", None), ("shape (0,)", write_npy(descr, [0], b"")),
           ("one more element", write_npy(descr, [n + 1] if dims else [2], data + data[:size] if n else b"\0" * 2 * size))]
    other = {"<i8": "<u8", "<u8": "<i8", "<f4": "<i8"}[descr]
    out.append(("dtype " + other, write_npy(other, dims, data)))

    def with_value(i, v):
        vv = list(vals)
        vv[i] = v
        return write_npy(descr, dims, struct.pack("<%d%s" % (n, fmt), *vv))

    if name.startswith("rng."):  # any other nonzero state is a valid one
        out.append(("all-zero state", write_npy(descr, dims, b"\0" * len(data))))
        return out
    if descr == "<f4":
        if name == "run.baseline":
            out += [("inf", with_value(0, float("inf")))]
        else:
            out += [("NaN at 0", with_value(0, float("nan"))), ("inf at %d" % (n - 1), with_value(n - 1, float("inf")))]
        if name.endswith(".lr"):
            out += [("lr -1", with_value(0, -1.0)), ("lr doubled", with_value(0, vals[0] * 2))]
        return out
    def bits(x):
        return struct.unpack("<Q", struct.pack("<d", x))[0]

    if name == "run.history":  # doubles stored as bits: epoch, step, then the metrics, a row per epoch
        if n >= 3:
            step = struct.unpack("<d", struct.pack("<Q", vals[1]))[0]
            out += [("epoch column 7", with_value(0, bits(7.0))), ("step column +1", with_value(1, bits(step + 1))),
                    ("a metric inf", with_value(2, bits(float("inf"))))]
        return out
    if name == "run.best":  # the best validation metric as a double's bits, then its epoch
        return out + [("value NaN", with_value(0, bits(float("nan")))), ("epoch +1", with_value(1, vals[1] + 1)),
                      ("epoch max", with_value(1, (1 << 64) - 1))]
    if name == "run.epoch_sums":
        return out + [("loss NaN", with_value(0, bits(float("nan")))), ("loss inf", with_value(0, bits(float("inf")))),
                      ("seconds -1", with_value(1, bits(-1.0)))]
    if name.startswith("run.flag"):
        return out + [("another value", write_npy(descr, dims, struct.pack("<%dQ" % n, *[ord("9")] * n) if n else b""))]
    big = (1 << 63) - 1 if descr == "<i8" else (1 << 64) - 1
    neg1 = -1 if descr == "<i8" else (1 << 64) - 1
    for i in range(n):
        for label, v in (("-1", neg1), ("max", big), ("+1", vals[i] + 1), ("+1000", vals[i] + 1000)):
            if descr == "<u8" and v > (1 << 64) - 1:
                continue
            if name == "data.batches" and i >= 3:  # the generator words: any nonzero state is valid
                continue
            if v == vals[i]:
                continue
            out.append(("[%d] %s" % (i, label), with_value(i, v)))
    if name == "data.batches":
        out.append(("generator all zero", write_npy(descr, dims, data[:3 * size] + b"\0" * (4 * size))))
    return out


def checkpoint_probes(runner, programs, work):
    for prog, base in programs:
        name = os.path.basename(prog)
        for label, stop in (("end of epoch 1", []), ("mid-epoch (--max-steps 3)", ["--max-steps", "3"])):
            ref = os.path.join(work, "ck-ref")
            shutil.rmtree(ref, ignore_errors=True)
            status, _, err = runner.run([prog] + base + ["--out", ref] + stop)
            if status != 0:
                sys.exit("probe.py: the reference run of %s failed: %s" % (name, err))
            ck = os.path.join(ref, "checkpoint.npz")
            with zipfile.ZipFile(ck) as z:
                entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
            # the first parameter and its optimizer entries stand for the others
            first = next(f[len("model."):-4] for f, _ in entries if f.startswith("model."))
            for fname, blob in entries:
                entry = fname[:-4]
                if entry.startswith(("model.", "optim.")) and not entry.endswith(("." + first, ".lr")):
                    continue
                descr, dims, data = read_npy(blob)
                for what, new in doctorings(entry, descr, dims, data):
                    if new is not None and read_npy(new) == (descr, dims, data):
                        continue  # the entry as it was (an empty history is already of shape (0,))
                    out = os.path.join(work, "ck-doctored")
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    with zipfile.ZipFile(os.path.join(out, "checkpoint.npz"), "w", zipfile.ZIP_STORED) as z:
                        for f2, b2 in entries:
                            if f2 == fname:
                                if new is not None:
                                    z.writestr(f2, new)
                            else:
                                z.writestr(f2, b2)
                    # the entry's name must be in the message; run.flag* entries name the flag instead
                    names = [entry.split("run.flag")[1]] if entry.startswith("run.flag") else [entry.split(".step.")[0] if ".step." in entry else entry]
                    runner.judge("checkpoints", "%s %s: %s %s" % (name, label, entry, what),
                                 [prog] + base + ["--out", out, "--resume", "--epochs", "2", "--max-steps", "0"], names, name)


# ---- library misuse ------------------------------------------------------------------------

def misuse_probes(runner, build):
    exe = os.path.join(build, "tests", "probe_misuse")
    listing = subprocess.run([exe], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        name, names = line.split("\t")
        runner.judge("misuse", name, [exe, name], [names])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--only", choices=["flags", "checkpoints", "misuse"])
    ap.add_argument("--verbose", action="store_true", help="list every case that was not refused")
    a = ap.parse_args()
    runner = Runner(a.timeout)
    work = tempfile.mkdtemp(prefix="tapegrad-probe-")
    try:
        data = os.path.join(work, "data")
        write_data(data)
        common = ["--data", data, "--validation", "100", "--batch-size", "50", "--epochs", "1", "--val-samples", "2",
                  "--eval-samples", "2"]
        programs = [(os.path.join(a.build, "examples", "structured_output"), common + ["--hidden", "20"]),
                    (os.path.join(a.build, "examples", "discrete_vae"), common)]
        if a.only in (None, "misuse"):
            misuse_probes(runner, a.build)
        if a.only in (None, "flags"):
            flag_probes(runner, programs, data, work)
        if a.only in (None, "checkpoints"):
            checkpoint_probes(runner, programs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kinds = ["crash", "hang", "silent", "unnamed", "other", "refused"]
    print("%-12s %6s " % ("class", "tried") + " ".join("%8s" % k for k in kinds))
    for cls, c in runner.counts.items():
        print("%-12s %6d " % (cls, sum(c.values())) + " ".join("%8d" % c[k] for k in kinds))
    for cls, cases in runner.cases.items():
        for outcome, what, detail in cases:
            print("  %s %s: %s  --  %s" % (cls, outcome, what, detail[:200]))
    bad = sum(c[k] for c in runner.counts.values() for k in ("crash", "hang", "silent"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
