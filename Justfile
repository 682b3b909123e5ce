# kdbench tasks. `just` is optional: every recipe is a plain cargo command.

default:
    @just --list

# Run an experiment file (e.g. just run experiments/quickstart.toml --profile smoke)
run FILE *ARGS:
    cargo run --release -- run {{FILE}} {{ARGS}}

# Print the expanded runs of an experiment without running them
plan FILE *ARGS:
    cargo run --release -- plan {{FILE}} {{ARGS}}

# Render the tables (decomposition, transfer, paper comparisons) and figures of everything in results/ (--format html: one page)
report *ARGS:
    cargo run --release -- report {{ARGS}}

# The efficiency table of an experiment file (e.g. just efficiency experiments/efficiency.toml --profile paper)
efficiency FILE *ARGS:
    cargo run --release -- efficiency {{FILE}} {{ARGS}}

# The nightly regression sweep: run experiments/nightly.toml (one worker on 2 threads, as its baseline), then
# judge it against results/baselines/nightly.parquet; exit 1 on a regression or failed run.
# Reports: reports/nightly/regress.md and regress.json. (A failed run does not stop the
# recipe: the verdict names its cells.)
nightly *ARGS:
    -cargo run --release -- run experiments/nightly.toml --threads 2 --jobs 1 --plain
    cargo run --release -- regress --baseline nightly --experiment nightly {{ARGS}}

# Promote the finished sweep of an experiment to a baseline (e.g. just baseline nightly --experiment nightly)
baseline NAME *ARGS:
    cargo run --release -- baseline save {{NAME}} {{ARGS}}

# SIGKILL `harness run` and `harness report` at random moments (KILL_TRIALS=24, KILL_SEED=2026),
# restart, and check that nothing done is lost, nothing is corrupt and the final metrics equal
# an uninterrupted sweep's
kill-trials:
    cargo test --release --test tests kill_trials::kill_trials -- --ignored --nocapture

# Fuzz TARGET (experiment_file, registry, npy_npz, image, weights) for SECONDS; says whether coverage plateaued
fuzz TARGET SECONDS="600":
    scripts/fuzz-campaign.sh {{TARGET}} {{SECONDS}}

# Minimise TARGET's corpus and save it as fuzz/seeds/TARGET.tar.xz (fuzz adds it to the corpus)
fuzz-save TARGET:
    scripts/fuzz-save-corpus.sh {{TARGET}}

# Registered data sets and whether their files are present
datasets *ARGS:
    cargo run --release -- datasets {{ARGS}}

# Training-step speed and memory against PyTorch (pip install torch for the reference)
bench *ARGS:
    cargo run --release -- bench train {{ARGS}}

# Write one task's expert of a finished run (e.g. just export 1a2b3c4d --task colon --out colon.safetensors)
export RUN *ARGS:
    cargo run --release -- export {{RUN}} {{ARGS}}

# Classify images with an exported expert (e.g. just predict colon.safetensors images.npz)
predict MODEL *INPUTS:
    cargo run --release -- predict {{MODEL}} {{INPUTS}}

# The test suite (release build: candle is ~11x slower unoptimised)
test:
    cargo test --release

# Formatting and lints as CI wants them
lint:
    cargo fmt --all -- --check
    cargo clippy --release --all-targets -- -D warnings
