#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Builds the Debian package of kmemtrace with cargo-deb (kmemtrace/Cargo.toml,
# [package.metadata.deb]) into target/debian/, then installs it with dpkg -i into a clean
# Debian 12 root (debootstrap --variant=minbase, made once under /var/cache/kmt-ci) and uses it
# there: kmemtrace --version, man kmemtrace, the completions, and a report on a synthetic trace.
# As root (chroot). Exit status: 0 the package installs and works, else the failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
cache=/var/cache/kmt-ci

echo "== cargo-deb $CARGO_DEB_VERSION"
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    cargo install -q --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

echo "== the binary, its man pages and completions (from its clap definitions)"
cargo build --locked --release -q -p kmemtrace
bin=target/release/kmemtrace
assets=target/release/deb
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man | gzip -9n >"$assets/man/kmemtrace.1.gz"
for sub in $("$bin" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ { on = 0 }'); do
    [ "$sub" = help ] && continue
    "$bin" man "$sub" | gzip -9n >"$assets/man/kmemtrace-$sub.1.gz"
done
"$bin" completions bash >"$assets/completions/kmemtrace.bash"
"$bin" completions zsh >"$assets/completions/_kmemtrace"
"$bin" completions fish >"$assets/completions/kmemtrace.fish"

echo "== cargo deb"
rm -rf target/debian
# Stripped, with the line tables in a -dbgsym package, as Debian ships binaries.
cargo deb -p kmemtrace --no-build --dbgsym --output target/debian/
deb=$(ls target/debian/kmemtrace_*.deb)
ls -l target/debian/
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb" | awk '{ print $6 }'

echo "== lintian: Debian's policy checks, errors and warnings fail"
command -v lintian >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian
}
# Left to the distribution's packager: upstream has no mailing address for Maintainer and the
# changelog, and the bug an initial upload closes is the distribution's ITP.
lintian --fail-on error,warning --tag-display-limit 0 \
    --suppress-tags malformed-contact,bogus-mail-host-in-debian-changelog,initial-upload-closes-no-bugs \
    "$deb" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning -q \
    --suppress-tags malformed-contact,bogus-mail-host-in-debian-changelog,initial-upload-closes-no-bugs \
    "$deb" >/dev/null 2>&1

echo "== a clean Debian 12 root"
tarball=$cache/bookworm-minbase-root.tar
if [ ! -e "$tarball" ]; then
    command -v debootstrap >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
    }
    mkdir -p "$cache"
    work=$(mktemp -d "$cache/kmt-dbs-XXXXXX")
    debootstrap --variant=minbase bookworm "$work" http://deb.debian.org/debian >/dev/null
    tar -C "$work" -cf "$tarball.part" .
    rm -rf "$work"
    mv "$tarball.part" "$tarball"
fi
root=$(mktemp -d /var/tmp/kmt-deb-root-XXXXXX)
cleanup() {
    umount "$root/proc" 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT
tar -C "$root" -xf "$tarball"
# mktemp's 0700 would lock every non-root user (man, _apt) out of the root's "/".
chmod 755 "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
# man-db, to read the page as a user would; the package itself needs nothing it does not declare.
chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends man-db >/dev/null'
cp "$deb" "$root/tmp/"

echo "== dpkg -i and use, inside the root"
chroot "$root" /bin/bash -euo pipefail -c '
    dpkg -i /tmp/kmemtrace_*.deb
    command -v kmemtrace
    kmemtrace --version
    man -P cat kmemtrace | head -n 12
    man -w kmemtrace-report
    test -s /usr/share/bash-completion/completions/kmemtrace
    test -s /usr/share/doc/kmemtrace/abi.md
    test -s /usr/share/doc/kmemtrace/copyright
    kmemtrace synth --out /tmp/trace --events 20000
    kmemtrace check /tmp/trace
    kmemtrace report /tmp/trace --lines 5 | head -n 30
    dpkg -r kmemtrace
    if [ -e /usr/bin/kmemtrace ] || [ -e /usr/share/man/man1/kmemtrace.1.gz ]; then
        echo "dpkg -r left kmemtrace files behind" >&2
        exit 1
    fi
'
echo "ci/deb.sh: $(basename "$deb") installs, works and removes cleanly in a clean Debian 12 root"
