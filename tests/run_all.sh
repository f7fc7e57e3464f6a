#!/usr/bin/env bash
# Runs every test runner given as arguments, shows their output, and ends with
# the total line "N passed, N failed, N skipped". Exits non-zero if any failed.
set -u
pass=0; fail=0; skip=0; rc=0
for runner in "$@"; do
  echo "== $runner"
  out=$($runner 2>&1); r=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ -z "$line" ]; then echo "runner $runner printed no summary (exit $r)"; fail=$((fail + 1)); rc=1; continue; fi
  set -- $line
  pass=$((pass + $1)); fail=$((fail + $3)); skip=$((skip + ${5:-0}))
  [ $r -ne 0 ] && rc=1
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ $rc -eq 0 ]
