#!/usr/bin/env bash
# Preflight every lab whose files changed between two commits of a lab repository (a CI job).
#
#   ci/preflight-changed-labs.sh BASE_REV HEAD_REV
#
# Run from the lab repository's work tree (the checkout of HEAD_REV). A lab is any folder with
# one *.clab.yml; a lab with changed files is preflighted with `--git BASE_REV..HEAD_REV`: the lab
# at BASE is the baseline, its router configs at HEAD the desired state. Per lab, into $AEGIS_CI_OUT
# (default aegis-reports/): LAB.junit.xml, LAB.md (the merge-request summary) and LAB/ (result,
# sealed bundle, PDF). summary.md concatenates the summaries.
#
# Exit: the worst outcome over the labs, by the preflight's own codes: 20 blocked, 3 evidence not
# sealed, 2 input error (e.g. the wiring changed), 10 needs approval, 0 ship ready (or no lab changed).
#
# Environment: AEGIS_MANAGE (how to call manage.py; default `/opt/aegis/aegis manage`),
# AEGIS_BACKEND (twin backend, default netns: the runner must be root), AEGIS_CI_OUT.
set -uo pipefail

base=${1:?usage: preflight-changed-labs.sh BASE_REV HEAD_REV}
head=${2:?usage: preflight-changed-labs.sh BASE_REV HEAD_REV}
manage=${AEGIS_MANAGE:-/opt/aegis/aegis manage}
backend=${AEGIS_BACKEND:-netns}
out=${AEGIS_CI_OUT:-aegis-reports}
mkdir -p "$out"
out=$(cd "$out" && pwd)
: > "$out/summary.md"

# Lab folders (holding a *.clab.yml at HEAD) that contain a file changed between BASE and HEAD.
labs=$(git ls-files '*.clab.yml' | xargs -r -n1 dirname | sort -u)
changed=$(git diff --name-only "$base" "$head") || { echo "cannot diff $base..$head" >&2; exit 2; }
worst=0
rank() { case $1 in 20) echo 5;; 3) echo 4;; 2) echo 3;; 10) echo 2;; 0) echo 0;; *) echo 6;; esac; }
found=0
for lab in $labs; do
    if ! printf '%s\n' "$changed" | grep -q "^$( [ "$lab" = . ] && echo '' || echo "$lab/")"; then
        continue
    fi
    found=1
    name=$(basename "$(cd "$lab" && pwd)")
    echo "== preflight $lab ($base..$head)"
    $manage preflight "$lab" --git "$base..$head" --backend "$backend" --out "$out/$name" \
        --junit "$out/$name.junit.xml" --markdown "$out/$name.md"
    code=$?
    echo "== $lab: exit $code"
    [ -f "$out/$name.md" ] && cat "$out/$name.md" >> "$out/summary.md"
    [ "$(rank "$code")" -gt "$(rank "$worst")" ] && worst=$code
done
[ "$found" = 1 ] || echo "no lab changed between $base and $head" | tee -a "$out/summary.md"
exit "$worst"
