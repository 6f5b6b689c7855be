#!/usr/bin/env bash
# Boost.Interprocess peer benchmark: builds peer.cpp (managed_shared_memory, offset_ptr
# containers, interprocess_mutex) with g++ -O2 against Debian's libboost-dev, runs it and
# `relshm peer-bench` (the same workloads with relshm's Offset List/Map and robust Mutex)
# on this machine, and prints both figures and the ratio relshm / Boost per workload
# (below 1: relshm is faster).
#
# Installs libboost-dev with apt-get when the headers are missing and it can (root, or
# password-less sudo); otherwise it says so and exits 0 without measuring.
#
# Environment: SIZES (default 1000,100000), REPS (5), LOCK_OPS (1000000),
# CARGO_TARGET_DIR (where cargo builds relshm; default target/).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=${SIZES:-1000,100000}
reps=${REPS:-5}
lock_ops=${LOCK_OPS:-1000000}

skip() {
    echo "boost peer benchmark skipped: $*" >&2
    exit 0
}

have_boost() {
    echo '#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/unordered_map.hpp>' | g++ -x c++ -std=c++17 -fsyntax-only - 2>/dev/null
}

command -v g++ >/dev/null || skip "g++ is not installed (apt-get install g++)"
if ! have_boost; then
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            as_root=(sudo -n)
        else
            skip "the Boost headers are missing and installing them needs root: run 'apt-get install libboost-dev' as root"
        fi
    fi
    command -v apt-get >/dev/null || skip "the Boost headers are missing and there is no apt-get: install Boost.Interprocess headers"
    echo "installing libboost-dev with apt-get ..." >&2
    "${as_root[@]}" apt-get update -qq >&2 || skip "apt-get update failed (no network?)"
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libboost-dev >&2 \
        || skip "apt-get install libboost-dev failed"
    have_boost || skip "libboost-dev is installed but the Boost.Interprocess headers still do not compile"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O2 -std=c++17 -o "$work/peer" "$here/peer.cpp" -pthread -lrt

target=${CARGO_TARGET_DIR:-$root/target}
(cd "$root" && cargo build --release -q -p relshm-cli)
relshm="$target/release/relshm"

echo "machine: $(uname -srm), $(nproc) cpu(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), sizes $sizes, best of $reps"
"$work/peer" --sizes "$sizes" --reps "$reps" --lock-ops "$lock_ops" >"$work/boost.jsonl"
"$relshm" peer-bench --sizes "$sizes" --reps "$reps" --lock-ops "$lock_ops" >"$work/relshm.jsonl"

# JSON lines -> "bench n ns" rows; the format is fixed by both programs.
rows() {
    sed -E 's/.*"bench":"([^"]+)","n":([0-9]+),"ns_per_op":([0-9.eE+-]+).*/\1 \2 \3/' "$1"
}
rows "$work/boost.jsonl" | sort >"$work/boost.txt"
rows "$work/relshm.jsonl" | sort >"$work/relshm.txt"
printf '%-18s %8s %12s %12s %14s\n' workload n "boost ns/op" "relshm ns/op" "relshm/boost"
awk 'NR == FNR { b[$1 " " $2] = $3; next }
     { k = $1 " " $2; if (k in b) printf "%-18s %8s %12.2f %12.2f %14.2f\n", $1, $2, b[k], $3, $3 / b[k]; }' \
    "$work/boost.txt" "$work/relshm.txt"
awk 'NR == FNR { r[$1 " " $2] = 1; next }
     !(($1 " " $2) in r) { printf "%-18s %8s %12.2f %12s %14s\n", $1, $2, $3, "-", "(boost only)" }' \
    "$work/relshm.txt" "$work/boost.txt"
echo "notes: relshm's map takes its robust locks on every insert (Boost's unordered_map has no"
echo "lock); list build and traversal run under one relshm lock acquisition; treemap is Boost's"
echo "red-black tree (boost::interprocess::map), listed for reference; alloc_free_64 is"
echo "Boost's segment_manager allocate/deallocate against relshm's Segment::alloc/free."
