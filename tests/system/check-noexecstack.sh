#!/bin/sh
# SPDX-License-Identifier: MIT
# check-noexecstack.sh [--expect-exec CONTROL.so]... PLUGIN.so...
#
# spillway.service runs with MemoryDenyWriteExecute=yes, under which glibc
# cannot make the stack executable: dlopen() of a library whose
# PT_GNU_STACK asks for it (or that has none, which means "executable" on
# x86) fails. Every plugin must therefore carry PT_GNU_STACK with flags RW.
# CONTROL.so are objects linked with -z execstack on purpose: they must be
# flagged, which shows this check can fail.
set -u
command -v readelf >/dev/null 2>&1 || { echo "SKIP: readelf (binutils) is not installed"; exit 77; }

fail=0
expect_exec=0
n=0
for arg in "$@"; do
        if [ "$arg" = --expect-exec ]; then
                expect_exec=1
                continue
        fi
        n=$((n + 1))
        flags=$(readelf -lW "$arg" 2>/dev/null | awk '$1 == "GNU_STACK" { print $7 }')
        if [ -z "$flags" ]; then
                verdict=exec; why="no PT_GNU_STACK header (executable stack by default)"
        elif [ "$flags" = "${flags#*E}" ]; then
                verdict=noexec; why="PT_GNU_STACK $flags"
        else
                verdict=exec; why="PT_GNU_STACK $flags"
        fi
        if [ $expect_exec = 1 ]; then
                if [ $verdict = exec ]; then
                        echo "ok - control $(basename "$arg") is flagged: $why"
                else
                        echo "not ok - control $(basename "$arg") should ask for an executable stack: $why"; fail=1
                fi
        elif [ $verdict = noexec ]; then
                echo "ok - $(basename "$arg"): $why"
        else
                echo "not ok - $(basename "$arg") needs an executable stack ($why): it cannot load under" \
                     "MemoryDenyWriteExecute=yes; link it with -Wl,-z,noexecstack and check its assembly files"
                fail=1
        fi
        expect_exec=0
done
[ $n -gt 0 ] || { echo "not ok - no plugin given"; exit 1; }
exit $fail
