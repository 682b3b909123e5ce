#!/usr/bin/env python3
"""Where the edges a fuzz campaign gained lie: by crate and by function.

    scripts/fuzz-gained-edges.py BINARY OLD_CORPUS NEW_CORPUS

BINARY is a cargo-fuzz build (`cargo +nightly fuzz build -O -a -s none TARGET`, under
fuzz/target/x86_64-unknown-linux-gnu/release/ or $CARGO_TARGET_DIR). The build has no
sanitizer runtime, so libFuzzer cannot symbolise; instead each corpus is merged into an
empty folder with a control file, whose COV lines list the indices of the PCs every input
covers. An index is a slot of the `__sancov_pcs` table, whose entries the binary fills in at
load time (R_X86_64_RELATIVE relocations, read with readelf); llvm-symbolizer names them.
A PC counts for the function that contains it after inlining (the outermost frame), so
serde code generated for our types shows as serde's. Needs readelf and llvm-symbolizer.

Used to decide whether a target that keeps gaining edges is exploring our code, a
dependency's, or code generated for our types (which seeds can reach directly).
"""
import collections
import re
import subprocess
import sys
import tempfile


def covered_indices(binary, corpus):
    with tempfile.TemporaryDirectory() as empty, tempfile.NamedTemporaryFile() as control:
        subprocess.run(
            [binary, "-merge=1", f"-merge_control_file={control.name}", empty, corpus],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        indices = set()
        with open(control.name) as f:
            for line in f:
                if line.startswith("COV "):
                    indices.update(int(i) for i in line.split()[2:])
        return indices


def pc_table(binary):
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True).stdout
    m = re.search(r"__sancov_pcs\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", sections)
    if not m:
        sys.exit(f"{binary}: no __sancov_pcs section (not a cargo-fuzz build?)")
    lo, size = int(m.group(1), 16), int(m.group(2), 16)
    table = {}
    relocs = subprocess.run(["readelf", "-rW", binary], capture_output=True, text=True,
                            check=True).stdout
    for line in relocs.splitlines():
        p = line.split()
        if len(p) >= 4 and p[2] == "R_X86_64_RELATIVE":
            off = int(p[0], 16)
            # Each entry is (pc, flags), 16 bytes; only the pc is relocated.
            if lo <= off < lo + size and (off - lo) % 16 == 0:
                table[(off - lo) // 16] = p[3]
    return table


def crate_of(path):
    m = re.search(r"registry/src/[^/]+/([^/]+)/", path)
    if m:
        return m.group(1)
    if path.startswith("/rustc/"):
        return "std"
    if "/fuzz/fuzz_targets/" in path:
        return "fuzz target"
    if "/src/" in path:
        return "kdbench"
    return path


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    binary, old, new = sys.argv[1:]
    before, after = covered_indices(binary, old), covered_indices(binary, new)
    gained = sorted(after - before)
    print(f"edges: {len(before)} in {old}, {len(after)} in {new}; "
          f"{len(gained)} gained, {len(before - after)} lost")
    table = pc_table(binary)
    pcs = "\n".join("0x" + table[i] for i in gained) + "\n"
    out = subprocess.run(["llvm-symbolizer", f"--obj={binary}", "--inlining=true", "--demangle"],
                         input=pcs, capture_output=True, text=True, check=True).stdout
    crates, functions = collections.Counter(), collections.Counter()
    for block in out.strip().split("\n\n"):
        lines = block.split("\n")
        function, location = lines[-2], lines[-1]  # outermost frame
        crates[crate_of(location)] += 1
        functions[function[:120]] += 1
    print("by crate:")
    for name, n in crates.most_common():
        print(f"  {n:5} {name}")
    print("by function (top 25):")
    for name, n in functions.most_common(25):
        print(f"  {n:5} {name}")


if __name__ == "__main__":
    main()
