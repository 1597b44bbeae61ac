#!/usr/bin/env bash
# The fast-feedback figures (BENCHMARKS.md, "Fast feedback"): a fresh clone of HEAD beside this
# checkout (so that ../shared resolves as in CI), the README's test command timed from nothing
# (the build included), timed again after a one-line change in shared/src, and with --ci the
# full gate (`bash .ci/run`) in another fresh clone. Run it on an otherwise idle machine.
#
#   bash infra/bench/feedback.sh [--ci]
#
# Last line: test_fresh_s=… test_incremental_s=… tests_passed=… tests_ignored=… [ci_s=…]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
parent="$(dirname "$repo")"
run_ci=0
[[ "${1:-}" == "--ci" ]] && run_ci=1

fresh_clone() {
  rm -rf "$1"
  git clone -q "$repo" "$1"
}

# Seconds a command took; its output goes to $2.
timed() {
  local log=$1
  shift
  local t0=$SECONDS
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "failed: $* (log: $log)" >&2
    exit 1
  fi
  echo $((SECONDS - t0))
}

clone="$parent/flexbridge-feedback"
fresh_clone "$clone"
cd "$clone"
echo "fresh clone at $clone; cargo test --workspace ..." >&2
fresh=$(timed "$clone/target-fresh.log" cargo test --workspace)
echo "  ${fresh} s" >&2
passed=$(awk '/^test result:/ {p += $4} END {print p}' "$clone/target-fresh.log")
ignored=$(awk '/^test result:/ {i += $8} END {print i}' "$clone/target-fresh.log")

echo "// a one-line change" >> shared/src/retry.rs
echo "after a one-line change in shared/src: cargo test --workspace ..." >&2
incremental=$(timed "$clone/target-incremental.log" cargo test --workspace)
echo "  ${incremental} s" >&2
git checkout -q shared/src/retry.rs

line="test_fresh_s=$fresh test_incremental_s=$incremental tests_passed=$passed tests_ignored=$ignored"
if [[ $run_ci == 1 ]]; then
  ci_clone="$parent/flexbridge-feedback-ci"
  fresh_clone "$ci_clone"
  echo "fresh clone at $ci_clone; bash .ci/run ..." >&2
  ci=$(cd "$ci_clone" && timed "$ci_clone/ci.log" bash .ci/run)
  echo "  ${ci} s" >&2
  line="$line ci_s=$ci"
fi
echo "$line"
