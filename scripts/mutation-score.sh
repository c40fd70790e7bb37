#!/usr/bin/env bash
# The mutation score of the protocol core: runs cargo-mutants over model/src/protocol/{writer,
# storage_node,log,client,msg}.rs (the files, exclusions and timeouts are in .cargo/mutants.toml)
# against the model crate's unit tests and its fast kill suite (model/tests/mutation_suite.rs),
# then prints the counts from outcomes.json.
#
#   scripts/mutation-score.sh                       # every mutant (about 2 hours on 2 shared cores)
#   scripts/mutation-score.sh --shard 0/4           # one shard of them
#   scripts/mutation-score.sh --only log            # one file of the core (cargo-mutants' own
#                                                   # --file adds to the config's globs instead)
#   scripts/mutation-score.sh -F 'Log::scl'         # any other cargo-mutants flag is passed on
#   scripts/mutation-score.sh --summary DIR...      # only print the counts of earlier runs (one
#                                                   # directory per shard or file), together
#
# OUT (default mutants-run, in the current directory) is where mutants.out is written. One job at a time (-j 1): the
# checks are CPU-bound and the machine is shared. Set CARGO_TARGET_DIR to reuse a target
# directory that already holds the dependencies (cargo-mutants builds in a copy of the tree).
# The exit status is 0 when no mutant was missed or timed out.
set -euo pipefail

# The counts over the outcomes.json of one or more runs (one per shard or file), then every
# survivor by name.
summary() {
    local files=()
    for dir in "$@"; do
        if [[ ! -f $dir/mutants.out/outcomes.json ]]; then
            echo "no $dir/mutants.out/outcomes.json: that run did not finish" >&2
            return 2
        fi
        files+=("$dir/mutants.out/outcomes.json")
    done
    jq -rs '
        map(.outcomes[] | select(.scenario != "Baseline")) as $m
        | ($m | map(.summary)) as $s
        | ($s | map(select(. == "CaughtMutant")) | length) as $killed
        | ($s | map(select(. == "MissedMutant")) | length) as $missed
        | ($s | map(select(. == "Timeout")) | length) as $timeout
        | ($s | map(select(. == "Unviable")) | length) as $unviable
        | ($killed + $missed + $timeout) as $viable
        | "mutants  \($m | length)",
          "viable   \($viable)",
          "killed   \($killed)",
          "missed   \($missed)",
          "timeout  \($timeout)",
          "unviable \($unviable)",
          "score    \(if $viable == 0 then "-" else "\($killed * 1000 / $viable | floor / 10)% of viable mutants killed" end)",
          ($m[] | select(.summary == "MissedMutant" or .summary == "Timeout")
            | "\(.summary)\t\(.scenario.Mutant.name)")
    ' "${files[@]}"
    jq -se 'map(.outcomes[] | select(.summary == "MissedMutant" or .summary == "Timeout")) | length == 0' \
        "${files[@]}" > /dev/null
}

if [[ ${1:-} == --summary ]]; then
    shift
    summary "${@:-mutants-run}"
    exit
fi

out=$(realpath -m "${OUT:-mutants-run}")
cd "$(dirname "$0")/.."

args=()
while (($#)); do
    case $1 in
        --only)
            args+=(--re "^model/src/protocol/$2\\.rs:")
            shift 2
            ;;
        *)
            args+=("$1")
            shift
            ;;
    esac
done

mkdir -p "$out"
start=$(date +%s)
# cargo-mutants exits non-zero when a mutant is missed: the summary below says which.
cargo mutants --package sixfold-model -j 1 --output "$out" "${args[@]}" || true
echo "took $(( $(date +%s) - start )) s"
summary "$out"
