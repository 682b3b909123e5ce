#!/usr/bin/env python3
"""Seeds for the experiment_file fuzz target: the repository's experiment files, and the
same with one value at a time replaced by a value of every TOML type (and by arrays of
each), likewise each element of an array and each value in an inline table, one line at a
time deleted, and every key the file's tables know (src/spec/file.rs)
and an unknown one added to every table; likewise with the commented-out examples live.

    scripts/fuzz-type-seeds.py OUT_DIR

Why: scripts/fuzz-gained-edges.py showed that most edges the experiment_file campaigns kept
finding late (273 of 440 over 6 600 s) lie in serde code generated for our spec types: the
"invalid type" and "missing field" paths of each field of each table, which random
mutation reaches only when it happens to keep a whole valid file around the one value it
changes. These inputs reach each of them directly, so a campaign spends its time on what
mutation alone can find. A variant is written only when it is still valid TOML (checked
with tomllib; a value that spans lines is skipped), so every one gets past the parser to
the validator. Files are named by the SHA-1 of their content, as libFuzzer names its own.
"""
import hashlib
import pathlib
import re
import sys
import tomllib

# One or more of every TOML value type, with the edge values of each; arrays of each scalar
# (an element of the wrong type is its own path) and of tables.
SCALARS = [
    '"x"', '""', "0", "-1", "1", "1000000000000", "0.5", "-0.5", "nan", "inf", "-inf", "true",
    "1979-05-27", "1979-05-27T07:32:00Z", "1979-05-27T07:32:00.999-07:00",
    "1979-05-27T07:32:00", "07:32:00", "07:32:00.5", "1979-05-27T07:32:00+01:30",
    "1979-05-27t07:32:00z", "1979-05-27 07:32:00", "1979-05-27T00:32:00.123456789Z",
    "2000-02-29",
]
VALUES = SCALARS + [f"[{v}]" for v in SCALARS] + [
    "[]", '["x", 1]', "[[1]]", "[{}]", "[{ x = 1 }]", '[{ from = "a", to = "b" }]', "{}",
    "{ x = 1 }",
]
# Keys of the experiment file's tables (src/spec/file.rs), most of them optional and absent
# from the repository's files, added to every table in turn.
FIELD = re.compile(r"^\s*pub ([a-z_]+):", re.M)
KEY_LINE = re.compile(r'^(\s*)([A-Za-z0-9_."-]+)(\s*=\s*)(.+)$')
# A scalar inside an array or an inline table: a string, or a bare number, boolean or date.
INNER_SCALAR = re.compile(r'"[^"]*"|[-+0-9A-Za-z_.:]+')
INNER_VALUES = SCALARS + ["[1]", "{}", "{ x = 1 }"]
COMMENTED_KEY_LINE = re.compile(r"^#\s*([a-z_]+\s*=.*)$")
TABLE_LINE = re.compile(r"^\s*\[")


def is_toml(text):
    try:
        tomllib.loads(text)
        return True
    except tomllib.TOMLDecodeError:
        return False


def variants(lines, fields):
    yield lines
    for i, line in enumerate(lines):
        m = KEY_LINE.match(line)
        if m:
            head, value = m.group(1) + m.group(2) + m.group(3), m.group(4)
            for v in VALUES:
                yield lines[:i] + [head + v] + lines[i + 1:]
            yield lines[:i] + lines[i + 1:]
            # Each of the first scalars inside an array or inline table (an element, or a
            # key's value in `{ from = "module.", to = "" }`), retyped in turn: the
            # deserialisers of the elements and of the tables' fields are paths of their own.
            if value.lstrip()[:1] in "[{":
                inner = [t for t in INNER_SCALAR.finditer(value) if "=" not in t.group()][:6]
                for t in inner:
                    for v in INNER_VALUES:
                        retyped = head + value[:t.start()] + v + value[t.end():]
                        yield lines[:i] + [retyped] + lines[i + 1:]
        if TABLE_LINE.match(line):
            for key in ["zz_unknown_key", *fields]:
                for value in ["1", '"x"']:
                    yield lines[:i + 1] + [f"{key} = {value}"] + lines[i + 1:]


def bases(lines):
    """The file, and the file with its commented-out examples (`#   weights = ...`) live."""
    yield lines
    live = [COMMENTED_KEY_LINE.sub(r"\1", line) for line in lines]
    if live != lines:
        yield live


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parent.parent
    experiments = root / "experiments"
    fields = sorted(set(FIELD.findall((root / "src/spec/file.rs").read_text())))
    written, skipped, seen = 0, 0, set()
    for path in sorted(experiments.glob("*.toml")):
        for base in bases(path.read_text().splitlines()):
            for variant in variants(base, fields):
                data = ("\n".join(variant) + "\n").encode()
                name = hashlib.sha1(data).hexdigest()
                if name in seen:
                    continue
                seen.add(name)
                if not is_toml(data.decode()):
                    skipped += 1  # e.g. a key the table already has
                    continue
                (out / name).write_bytes(data)
                written += 1
    print(f"{out}: {written} inputs from {experiments}/*.toml "
          f"({skipped} variants not TOML, skipped)")


if __name__ == "__main__":
    main()
