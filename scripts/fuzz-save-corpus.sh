#!/usr/bin/env bash
# Minimises one target's corpus (libFuzzer's merge: the fewest inputs that keep every
# feature) and saves it as fuzz/seeds/TARGET.tar.xz, which scripts/fuzz-campaign.sh adds
# to the corpus, so that a campaign on another machine continues this one.
#
#   scripts/fuzz-save-corpus.sh TARGET
#
# The archive is reproducible (sorted names, no times or owners), so an unchanged corpus
# gives the same bytes.
set -euo pipefail
target=${1:?usage: scripts/fuzz-save-corpus.sh TARGET}
cd "$(dirname "$0")/../fuzz"
[ -d "corpus/$target" ] || { echo "no corpus/$target" >&2; exit 2; }
before=$(ls "corpus/$target" | wc -l)
cargo +nightly fuzz cmin -O -a -s none "$target" "corpus/$target" >"logs/$target.cmin.log" 2>&1 || {
    tail -20 "logs/$target.cmin.log" >&2
    exit 1
}
after=$(ls "corpus/$target" | wc -l)
mkdir -p seeds
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C corpus -cf - "$target" |
    xz -9 -T1 >"seeds/$target.tar.xz.tmp"
mv "seeds/$target.tar.xz.tmp" "seeds/$target.tar.xz"
echo "$target: minimised $before -> $after inputs, seeds/$target.tar.xz $(wc -c <"seeds/$target.tar.xz") bytes"
