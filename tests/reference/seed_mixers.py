"""Reference values of the harness's three seed mixers (src/util/seed.rs), transcribed from
their formulas as they stood before they were merged into one module:

  SplitMix64::derive(7, "init", [3]).next_u64()      (util/rng.rs)
  derive_seed(5, ["colon", "train"])                  (data/load.rs)
  Mixer::new(0).str("medmnist").u64(3).finish()       (data/synthetic.rs, now src/util/seed.rs)

Run with `python3 tests/reference/seed_mixers.py`; the test `mixers_keep_their_bits`
pins the printed values.
"""

M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def finalize(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def splitmix_next(state):
    state = (state + GOLDEN) & M
    return state, finalize(state)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


def derive(seed, purpose, extra):
    s = seed ^ GOLDEN
    for b in purpose.encode():
        s = finalize(s ^ b)
    for e in extra:
        s = finalize(s ^ e)
    return s


def derive_seed(base, parts):
    h = 0xCBF29CE484222325
    for p in parts:
        for b in list(p.encode()) + [0xFF]:
            h = ((h ^ b) * 0x100000001B3) & M
    return splitmix_next(base ^ rotl(h, 17))[1]


def mixer_u64(v, x):
    return splitmix_next(v ^ x)[1] ^ rotl(v, 17)


def mixer_str(v, s):
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M
    return mixer_u64(mixer_u64(v, h), len(s.encode()))


print(hex(splitmix_next(derive(7, "init", [3]))[1]))
print(hex(derive_seed(5, ["colon", "train"])))
print(hex(mixer_u64(mixer_str(mixer_u64(0x6A09E667F3BCC909, 0), "medmnist"), 3)))
