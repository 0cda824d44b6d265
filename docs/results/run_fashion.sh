#!/bin/sh
# The Fashion-MNIST numbers of README's "Evaluation → Measured": eleven methods on a fixed, seeded
# 1,000-image subset of the test set, ground-truth class, raw and 8-level heat-quantized ranking.
#
#   sh docs/results/run_fashion.sh                 (from the project root, after a release build)
#
# 1. tools/fashion_subset.py writes the subset's PNGs and labels.csv to $DATA (not committed);
# 2. each setting (--quantize 0 and 8) runs as $SHARDS interleaved shards (`--shard K/N`), $LANES
#    processes at a time, one thread each; a shard writes its CSV when it ends, and a rerun skips
#    the shards already written;
# 3. `resnet-lrp merge` joins the shards of each setting: $OUT/fashion_q{0,8}.txt is the table it
#    prints, $OUT/fashion_q{0,8}.csv the joined rows without the two curve columns (the scores,
#    probabilities and times; `resnet-lrp merge` reads it again and prints the same table).
set -eu
CLI=${CLI:-target/release/resnet-lrp}
DATA=${DATA:-target/fashion1000}
WORK=${WORK:-target/fashion-shards}
OUT=${OUT:-docs/results}
PY=${PY:-.venv/bin/python}
SHARDS=${SHARDS:-10}
LANES=${LANES:-2}
METHODS=flows_skip,flows_skip_simple,latest,simple,conventional,gradient,ig,guided_backprop,gradcam,scorecam,random
export CLI DATA WORK OUT PY SHARDS LANES

[ -f "$DATA/labels.csv" ] || "$PY" tools/fashion_subset.py "$DATA" --count 1000 --seed 0
mkdir -p "$WORK" "$OUT"

if [ "${1:-}" = shard ]; then # one shard: shard QUANTIZE K
    [ -f "$WORK/q$2_$3.csv" ] && exit 0 # already done (a rerun after an interruption goes on)
    "$CLI" evaluate --model models/fashion_resnet.onnx --images "$DATA" --labels "$DATA/labels.csv" \
        --methods "$METHODS" --quantize "$2" --step 8 --threads 1 --shard "$3/$SHARDS" \
        --csv "$WORK/q$2_$3.part" > "$WORK/q$2_$3.txt" 2> /dev/null
    mv "$WORK/q$2_$3.part" "$WORK/q$2_$3.csv"
    exit 0
fi

# the shards in the order (k = 0: raw, quantized), (k = 1: …), …, $LANES at a time
k=0
while [ "$k" -lt "$SHARDS" ]; do printf '0 %s\n8 %s\n' "$k" "$k"; k=$((k + 1)); done |
    xargs -P "$LANES" -n 2 sh "$0" shard

for q in 0 8; do
    "$CLI" merge "$WORK"/q"$q"_*.csv --csv "$WORK/fashion_q$q.csv" > "$OUT/fashion_q$q.txt"
    # drop the curve columns (about 200 numbers per row)
    "$PY" -c 'import csv, sys
r = csv.DictReader(open(sys.argv[1])); keep = [c for c in r.fieldnames if not c.endswith("_curve")]
w = csv.DictWriter(open(sys.argv[2], "w", newline=""), keep, extrasaction="ignore", lineterminator="\n")
w.writeheader(); w.writerows(r)' "$WORK/fashion_q$q.csv" "$OUT/fashion_q$q.csv"
done
