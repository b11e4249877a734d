#!/usr/bin/env bash
# Runs memcached 1.6.18's own Perl test suite (t/*.t from Debian's source
# package) against netlib-memcached and prints a pass/fail/skip table.
#
#   scripts/memcached_suite.sh                 # every t/*.t
#   scripts/memcached_suite.sh t/getset.t ...  # just these
#   SUITE_TIMEOUT=120 scripts/memcached_suite.sh
#
# The suite starts the server itself: MemcachedTest.pm runs
# "$builddir/timedrun 600 $builddir/memcached-debug <flags>" with cwd as
# builddir. So the source tree (fetched once into
# target/memcached-suite/, with `apt-get source` against a private apt
# state: no system apt configuration is changed) gets timedrun compiled from
# its timedrun.c and memcached-debug as a symlink to our binary - the suite
# passes its flags (-u root, -o relaxed_privileges, -s <path>, ...) to our
# binary unchanged. Each file runs with a time limit (default 60 s); a file
# that hits it is TIMEOUT. Not part of cargo test or scripts/test.sh: the
# whole run takes minutes. Needs perl, cc, apt-get and dpkg-source.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/target/memcached-suite"
version="1.6.18"
src="$cache/memcached-$version"
per_file="${SUITE_TIMEOUT:-60}"

fetch() {
    [[ -f "$src/t/lib/MemcachedTest.pm" ]] && return
    mkdir -p "$cache/apt/lists/partial"
    cat >"$cache/apt/sources.list" <<EOF
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
    local apt=(-o "Dir::Etc::SourceList=$cache/apt/sources.list"
        -o "Dir::Etc::SourceParts=/dev/null"
        -o "Dir::State::Lists=$cache/apt/lists"
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)")
    echo "fetching memcached $version's source (Debian) into $cache" >&2
    apt-get "${apt[@]}" -qq update
    (cd "$cache" && apt-get "${apt[@]}" -qq source --download-only memcached)
    local dsc
    dsc="$(ls "$cache"/memcached_"$version"-*.dsc | tail -n 1)"
    rm -rf "$src"
    dpkg-source --no-check -x "$dsc" "$src" >/dev/null
}

prepare() {
    if [[ ! -x "$src/timedrun" ]]; then
        cc -O2 -o "$src/timedrun" "$src/timedrun.c"
    fi
    (cd "$root" && cargo build -q --release -p examples --bin netlib-memcached)
    ln -sf "$root/target/release/netlib-memcached" "$src/memcached-debug"
}

# Runs one file; prints "<result> <passed>/<planned> <seconds>".
run_one() {
    local file="$1" log="$2" start end status
    start=$(date +%s)
    set +e
    (cd "$src" && timeout -k 5 "$per_file" perl "$file") >"$log" 2>&1 </dev/null
    status=$?
    set -e
    end=$(date +%s)
    local planned passed failed
    planned=$(grep -m1 -oE '^1\.\.[0-9]+' "$log" | cut -c4- || true)
    passed=$(grep -cE '^ok ' "$log" || true)
    failed=$(grep -cE '^not ok ' "$log" || true)
    local result
    if grep -qE '^1\.\.0 # (SKIP|skip)' "$log"; then
        result=SKIP
    elif [[ $status -eq 124 || $status -eq 137 ]]; then
        result=TIMEOUT
    elif [[ $status -eq 0 && $failed -eq 0 && -n "$planned" && $passed -eq $planned ]]; then
        result=PASS
    else
        result=FAIL
    fi
    echo "$result ${passed}/${planned:-?} $((end - start))s"
}

main() {
    fetch
    prepare
    local logs="$cache/logs"
    mkdir -p "$logs"
    local files=("$@")
    if [[ ${#files[@]} -eq 0 ]]; then
        mapfile -t files < <(cd "$src" && ls t/*.t)
    fi
    local pass=0 fail=0 skip=0 timeout_n=0
    printf '| %-32s | %-7s | %-9s | %-5s |\n' file result "ok/plan" time
    printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "---------" "-----------" "-------"
    for file in "${files[@]}"; do
        local name log line result
        name="${file#t/}"
        log="$logs/${name%.t}.log"
        line=$(run_one "$file" "$log")
        result=${line%% *}
        case $result in
            PASS) pass=$((pass + 1)) ;;
            FAIL) fail=$((fail + 1)) ;;
            SKIP) skip=$((skip + 1)) ;;
            TIMEOUT) timeout_n=$((timeout_n + 1)) ;;
        esac
        read -r _ counts secs <<<"$line"
        printf '| %-32s | %-7s | %-9s | %-5s |\n' "$name" "$result" "$counts" "$secs"
    done
    echo
    echo "pass $pass, fail $fail, skip $skip, timeout $timeout_n (of ${#files[@]}); logs in $logs"
}

main "$@"
