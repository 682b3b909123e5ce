#!/usr/bin/env bash
# Runs one cargo-fuzz target for a fixed time and says whether its coverage plateaued.
#
#   scripts/fuzz-campaign.sh TARGET SECONDS
#
# libFuzzer's status lines carry no clock, so each line is stamped with the seconds since
# the start as it arrives (fuzz/logs/TARGET.log, not committed); times in the summary count
# from the end of corpus loading (libFuzzer's INITED line), as SECONDS does. The summary
# gives the time and inputs run, the edge coverage (cov) and features (ft) at the start and
# the end, when cov last grew, and how much cov and ft grew over the second half of the
# inputs run (not of the time: a campaign that shares its core with other work runs fewer
# inputs per second, which must not pass for a plateau): "plateau" means under 0.5 % more
# edges and under 1 % more features over that second half.
# FUZZ_TIMEOUT (seconds, default 10) is libFuzzer's hang limit: its clock is the wall clock,
# so a campaign that is paused (SIGSTOP, to free the cores for a measurement) for longer
# reports a "timeout" that is no hang; raise it for such campaigns.
# FUZZ_FORK=N (default 1) fuzzes with N processes at once (libFuzzer's -fork=N: child
# processes on parts of the corpus, their finds merged into it), so a campaign can use
# every core; its cov counts differ from a single process's (compare campaigns of the same
# mode only), and its start is the first status line, as fork mode prints no INITED line.
# Exit status: libFuzzer's (non-zero when it found a crash, a hang or a memory blow-up; the
# input is then under fuzz/artifacts/TARGET/).
set -uo pipefail
target=${1:?usage: scripts/fuzz-campaign.sh TARGET SECONDS}
seconds=${2:?usage: scripts/fuzz-campaign.sh TARGET SECONDS}
cd "$(dirname "$0")/../fuzz" || exit 2
mkdir -p logs "corpus/$target"
# The committed minimised corpus (scripts/fuzz-save-corpus.sh writes it) is added to the
# corpus, so campaigns add up across machines, also where the seed generators
# (scripts/fuzz-*-seeds.py) filled the folder first. Inputs are named by their SHA-1, so
# what the corpus already has is skipped.
if [ -f "seeds/$target.tar.xz" ]; then
    tar -xJf "seeds/$target.tar.xz" -C corpus --skip-old-files || exit 2
    echo "corpus/$target: $(ls "corpus/$target" | wc -l) inputs with seeds/$target.tar.xz"
fi
dict=()
fork=()
[ "${FUZZ_FORK:-1}" -gt 1 ] && fork=("-fork=$FUZZ_FORK")
[ -f "dicts/$target.dict" ] && dict=("-dict=dicts/$target.dict")
log="logs/$target.log"
# Build first, so that the clock starts with the fuzzing.
cargo +nightly fuzz build -O -a -s none "$target" || exit 2
start=$EPOCHSECONDS
cargo +nightly fuzz run -O -a -s none "$target" -- \
    -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=4096 -print_final_stats=1 "${fork[@]}" "${dict[@]}" 2>&1 |
    while IFS= read -r line; do printf '%6d %s\n' $((EPOCHSECONDS - start)) "$line"; done >"$log"
status=${PIPESTATUS[0]}
awk -v target="$target" -v total="$seconds" -v status="$status" '
    # "#1234  NEW    cov: 10 ft: 20 corp: ..." and the same for INITED/pulse/REDUCE lines;
    # in fork mode "#1234: cov: 10 ft: 20 corp: ..." once per finished child
    $2 ~ /^#[0-9]+:?$/ {
        n = substr($2, 2) + 0
        for (i = 3; i < NF; i++) {
            if ($i == "cov:") c = $(i + 1) + 0
            if ($i == "ft:") f = $(i + 1) + 0
        }
        if ($3 == "INITED" || ($2 ~ /:$/ && !started)) { t0 = $1; n0 = n; cov0 = c; ft0 = f; started = 1 }
        t = $1 - t0
        if (c > cov) { cov = c; last_cov = t }
        if (f > ft) ft = f
        lines++; at_n[lines] = n; at_cov[lines] = cov; at_ft[lines] = ft
        runs = n
    }
    /stat::number_of_executed_units:/ { runs = $NF }
    END {
        # cov and ft where half the inputs after loading the corpus had run
        half = n0 + (runs - n0) / 2
        for (i = 1; i <= lines && at_n[i] <= half; i++) { cov_half = at_cov[i]; ft_half = at_ft[i] }
        gc = cov_half > 0 ? 100 * (cov - cov_half) / cov_half : 100
        gf = ft_half > 0 ? 100 * (ft - ft_half) / ft_half : 100
        plateau = (gc < 0.5 && gf < 1) ? "plateau" : "still rising"
        # A find stops libFuzzer early: the time is then when it stopped, and the halves
        # say nothing.
        if (status != 0) { total = t; plateau = "stopped by a find (see fuzz/artifacts/" target "/)" }
        printf "%s: %d s, %d inputs (%.0f/s), cov %d -> %d, ft %d -> %d, last new edge at %d s; second half of the inputs: cov +%.2f%%, ft +%.2f%%: %s; exit %d\n",
            target, total, runs, runs / total, cov0, cov, ft0, ft, last_cov, gc, gf, plateau, status
    }' "$log"
exit "$status"
