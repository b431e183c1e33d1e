#!/bin/bash
# Memory-safety check of the compiled kernels: builds dr_inspect/decode/_native.c and
# dr_inspect/columnar/_hashids.c with AddressSanitizer and UndefinedBehaviorSanitizer into a copy
# of the tree and runs the tests that compare them with the numpy code (tcpdump corpus, fuzzed and
# random frames, key numbering) against them. Any out-of-bounds access, overflow or undefined
# behaviour aborts with a report.
#     bash scripts/asan-kernels.sh           (needs gcc and the Python headers)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
work=$top/tree
mkdir "$work"
git -C "$root" ls-files -z | (cd "$root" && xargs -0 tar -c) | tar -x -C "$work"
# the tcpdump corpus is read from ../shared, as in the repository's own checkout
if [ -d "$root/../shared" ]; then ln -s "$root/../shared" "$top/shared"; fi
inc=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['include'])")
ext=$(python3 -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
for src in decode/_native columnar/_hashids; do
    gcc -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fPIC -shared -I"$inc" \
        "$work/dr_inspect/$src.c" -o "$work/dr_inspect/$src$ext"
done
cd "$work"
PYTHONPATH="$work" LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_decode_native.py \
    tests/test_decode_fuzz.py tests/test_decode.py tests/test_decode_corpus.py tests/test_correlate.py tests/test_columnar.py \
    tests/test_tables.py
