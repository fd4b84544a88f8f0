#!/usr/bin/env bats
# The GitHub Actions workflows pass actionlint (which also shellchecks their run: blocks), and
# actionlint does reject a broken workflow.

setup() { load helpers; }

@test "actionlint accepts every workflow in .github/workflows" {
  run "$REPO/tools/actionlint.sh"
  assert_success
}

@test "actionlint rejects a broken workflow (the check can fail)" {
  printf 'on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ matrix.missing }}\n' \
    >"$BATS_TEST_TMPDIR/broken.yml"
  run "$REPO/tools/actionlint.sh" "$BATS_TEST_TMPDIR/broken.yml"
  assert_failure
  assert_output --partial 'property "missing" is not defined'
}

@test "every workflow that changes a stack is serialised per stack and never cancelled mid-way" {
  for workflow in deploy destroy; do
    run grep -c 'cancel-in-progress: false' "$REPO/.github/workflows/$workflow.yml"
    [ "$output" -ge 1 ] || fail "$workflow.yml: no non-cancelling concurrency group"
    grep -q 'group: pulumi-' "$REPO/.github/workflows/$workflow.yml" || fail "$workflow.yml: no per-stack group"
  done
}

@test "no workflow authenticates to GCP with a JSON key" {
  run grep -rlE 'credentials_json|GOOGLE_CREDENTIALS' "$REPO/.github/workflows"
  assert_failure
}

@test "npm run test:workflows passes in a copy of the repository without .git (a downloaded archive)" {
  copy="$BATS_TEST_TMPDIR/archive"
  mkdir -p "$copy/tools"
  cp -r "$REPO/.github" "$copy/"
  cp "$REPO/tools/actionlint.sh" "$REPO/tools/go-cache.sh" "$copy/tools/"
  [ ! -e "$copy/.git" ]
  run bash -c "cd '$copy' && GIT_CEILING_DIRECTORIES='$BATS_TEST_TMPDIR' bash tools/actionlint.sh"
  assert_success
}
