#!/bin/bash
# check-format.sh SOURCE_ROOT: every C, CUDA and header file of the tree
# follows .clang-format (the project's one indentation style). Lists the files
# that do not, with the command that fixes them. Skips (77) without
# clang-format or outside a git checkout.
set -u
root="${1:?usage: check-format.sh SOURCE_ROOT}"
cd "$root" || exit 1
command -v clang-format >/dev/null || { echo "clang-format not installed"; exit 77; }
git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo "not a git checkout"; exit 77; }
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cu' '*.cuh' | grep -v '^tests/fixtures/')
bad=()
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -ne 0 ]; then
    echo "not formatted as .clang-format says (${#bad[@]} of ${#files[@]} files):"
    printf '  %s\n' "${bad[@]}"
    echo "fix: clang-format -i ${bad[*]}"
    exit 1
fi
echo "ok   ${#files[@]} files follow .clang-format"
