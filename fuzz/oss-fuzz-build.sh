#!/bin/bash -eu
# SPDX-License-Identifier: MIT
# OSS-Fuzz build script (the project's build.sh): builds every libFuzzer
# target of the tree and installs, in $OUT, for each target NAME:
#   fuzz-NAME                  the program
#   fuzz-NAME_seed_corpus.zip  fuzz/corpus/NAME
#   fuzz-NAME.dict             its dictionary, when it has one
#   fuzz-NAME.options          libFuzzer options (the limits tools/fuzz uses)
# and $OUT/plugins (null.so, sqlite.so) for the targets that run a daemon,
# and in $OUT/lib the shared libraries the targets need beyond the base
# runner image (libyaml, jansson, libsystemd...), found through an rpath of
# $ORIGIN/lib.
#
# The Dockerfile installs what tools/install-deps installs (meson, ninja,
# pkg-config, libyaml-dev, libjansson-dev, libsystemd-dev, libsqlite3-dev,
# libcurl4-openssl-dev, libmariadb-dev) and copies the tree to $SRC/spillway.
# Outside OSS-Fuzz, try it with:
#   CC=clang CFLAGS="-fsanitize=address,fuzzer-no-link" OUT=/tmp/out WORK=/tmp/work fuzz/oss-fuzz-build.sh
# Only the libFuzzer engine is supported: the targets link -fsanitize=fuzzer
# (meson's fuzzing option); AFL and honggfuzz builds are refused below.

src=$(cd "$(dirname "$0")/.." && pwd) # the tree this script is in
work=${WORK:-/tmp/spillway-oss-fuzz}
out=${OUT:?OUT must name the output folder}

case "${FUZZING_ENGINE:-libfuzzer}" in
libfuzzer) ;;
*) echo "oss-fuzz-build.sh: only FUZZING_ENGINE=libfuzzer is supported" >&2; exit 1 ;;
esac

# Sanitizer flags come from CFLAGS (OSS-Fuzz sets them); meson's own
# sanitizer option stays off so they are not given twice.
build=$work/build
rm -rf "$build"
LDFLAGS="${LDFLAGS:-} -Wl,-rpath,\$ORIGIN/lib" \
meson setup "$build" "$src" \
        -Dfuzzing=enabled -Db_lundef=false -Dsystem-tests=disabled \
        -Dwebhook=enabled -Dsqlite=enabled -Dmysql=disabled \
        --buildtype=plain
ninja -C "$build"

mkdir -p "$out/lib"
for dir in "$src"/fuzz/corpus/*/; do
        name=$(basename "$dir")
        exe=$(find "$build" -type f -perm -u+x -name "fuzz-$name" | head -n 1)
        [ -n "$exe" ] || continue
        cp "$exe" "$out/"
        (cd "$dir" && zip -q -r "$out/fuzz-${name}_seed_corpus.zip" .)
        for d in "$src/fuzz/$name.dict" "$src"/src/*/"fuzz-$name.dict" "$src"/plugins/*/"fuzz-$name.dict"; do
                [ -f "$d" ] && cp "$d" "$out/fuzz-$name.dict" && break
        done
        printf '[libfuzzer]\nrss_limit_mb = 2048\ntimeout = 10\n' >"$out/fuzz-$name.options"
        # the libraries the runner image does not have
        ldd "$exe" | awk '/=> \// { print $3 }' | grep -Ev '/lib(c|m|dl|pthread|rt|gcc_s|stdc\+\+)\.so' |
                while read -r lib; do cp -n "$lib" "$out/lib/" ; done
done
# the daemon targets (ingest, admin) load real plugins from plugins/ beside them
mkdir -p "$out/plugins"
for p in null sqlite; do
        cp "$build/plugins/$p.so" "$out/plugins/"
        ldd "$build/plugins/$p.so" | awk '/=> \// { print $3 }' | grep -Ev '/lib(c|m|dl|pthread|rt|gcc_s|stdc\+\+)\.so' |
                while read -r lib; do cp -n "$lib" "$out/lib/" ; done
done
echo "oss-fuzz-build.sh: $(ls "$out"/fuzz-* | grep -vc '\.\(zip\|dict\|options\)$') targets in $out"
