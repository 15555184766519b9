#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package test: build the packages from a clean copy of the tree,
# check them with lintian, then install them into a Debian 12 container
# booted with a real systemd (systemd-nspawn) and use them as a new user
# would, through upgrade, remove and purge.
#
#   1. copy the tree (git's tracked and new files, no build folders) to a
#      scratch folder and run `dpkg-buildpackage -us -uc -b` there;
#   2. lintian on the .changes and on the source package: no error and no
#      warning (overrides in debian/ carry their reason); print the
#      installed sizes;
#   3. boot a minimal Debian 12 (debootstrap --variant=minbase with systemd;
#      built once, cached in /var/cache/spillway-test/) under a throw-away
#      overlayfs, `apt-get install` the .debs, run debian/tests/smoke (the
#      autopkgtest: sockets, socket activation, ban add/list, a producer in
#      the spillway group, journal, catalog, reload), build the plugin
#      guide's example against the -dev package and load it, then
#      re-install the same version (database and configuration kept, the
#      sockets untouched, the running daemon restarted), `apt-get remove`
#      (nothing left running, state kept) and `apt-get purge`
#      (configuration and state gone).
#
# Why a debootstrapped root rather than an overlay over the host's /usr: the
# packages then meet a pristine dpkg database and /etc, so their Depends,
# maintainer scripts, sysusers entry, conffiles and purge are tested as on a
# user's machine, and nothing the host has installed (or starts at boot)
# can hide a missing dependency or get in the way.
#
# Environment:
#   SPW_PACKAGE_SOURCE  worktree (default: the working tree's tracked and
#                       untracked files), HEAD (git archive HEAD), or a folder
#   SPW_PACKAGE_KEEP=1  keep the scratch folder (build logs, .debs) at exit
#   SPW_CACHE_DIR       default /var/cache/spillway-test
#
# Exit status: 0 all checks passed, 1 a check failed, 77 skipped (not root,
# or a tool is missing: the reason is printed).
set -uo pipefail

ROOT_DIR=$(cd "$(dirname "$0")/../.." && pwd)
CACHE_DIR=${SPW_CACHE_DIR:-/var/cache/spillway-test}
SOURCE=${SPW_PACKAGE_SOURCE:-worktree}
# What the cached container has besides minbase: systemd as PID 1, dbus, and
# the packages' runtime libraries, so installing needs no download.
ROOT_INCLUDE=systemd,systemd-sysv,dbus,libyaml-0-2,libjansson4,libsqlite3-0,libcurl4,libmariadb3

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "not ok - $*"; echo "FAIL: $*" >&2; exit 1; }
failed=0
ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; failed=1; }

T0=$(date +%s)
TLAST=$T0
TIMES=""
mark() { local now; now=$(date +%s); TIMES+=$(printf '  %-44s %4ds' "$1" $((now - TLAST)))$'\n'; TLAST=$now; }

# ---------------------------------------------------------------- preconditions
[ "$(id -u)" = 0 ] || skip "the package test needs root (it boots a container with systemd-nspawn)"
for tool in dpkg-buildpackage lintian systemd-nspawn nsenter git mount; do
	command -v "$tool" >/dev/null || skip "$tool is not installed (tools/install-deps --test installs it)"
done
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ "$CODENAME" = bookworm ] || skip "the container is Debian 12 (bookworm) built with this machine's apt sources; this is '$CODENAME'"
(cd "$ROOT_DIR" && dpkg-checkbuilddeps) ||
	die "build dependencies of debian/control are missing (see above; tools/install-deps --test installs them)"

WORK=""; NSPAWN_PID=""; LEADER=""; MERGED=""; NAME=spwpkg$$
cleanup() {
	set +e
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		[ -n "$LEADER" ] && nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1
		for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
		# last resort: the container's PID 1 (its pid namespace goes with it), then nspawn
		if kill -0 "$NSPAWN_PID" 2>/dev/null; then
			[ -n "$LEADER" ] && kill -KILL "$LEADER" 2>/dev/null; sleep 0.5
			kill -KILL "$NSPAWN_PID" 2>/dev/null
		fi
	fi
	if [ -n "$MERGED" ] && mountpoint -q "$MERGED"; then
		umount "$MERGED" 2>/dev/null || umount -l "$MERGED"
	fi
	if [ -n "$WORK" ]; then
		if [ -n "${SPW_PACKAGE_KEEP:-}" ]; then
			rm -rf --one-file-system "$WORK/root" "$WORK/upper" "$WORK/ovlwork"
			echo "# kept $WORK"
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

WORK=$(mktemp -d -t spillway-package.XXXXXX)
chmod 755 "$WORK"

# ---------------------------------------------------------------- 1. build
SRC=$WORK/src/spillway
mkdir -p "$SRC"
case "$SOURCE" in
worktree)
	# tracked and new files as they are on disk, never build output (.gitignore)
	(cd "$ROOT_DIR" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$SRC" || die "copying the working tree"
	;;
HEAD)
	(cd "$ROOT_DIR" && git archive HEAD) | tar -xf - -C "$SRC" || die "git archive HEAD"
	;;
*)
	[ -d "$SOURCE/debian" ] || die "SPW_PACKAGE_SOURCE=$SOURCE: not a source tree with debian/"
	cp -a "$SOURCE/." "$SRC/"
	;;
esac
# The source package too (3.0 (quilt): an orig tarball of the same tree
# without debian/), so that lintian also checks it.
VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
UPVER=${VERSION%-*}
mkdir -p "$WORK/srcpkg"
cp -a "$SRC" "$WORK/srcpkg/spillway-$UPVER"
tar -C "$WORK/srcpkg" --exclude="spillway-$UPVER/debian" -cJf "$WORK/srcpkg/spillway_$UPVER.orig.tar.xz" "spillway-$UPVER"
if (cd "$WORK/srcpkg/spillway-$UPVER" && dpkg-source -b .) >"$WORK/source.log" 2>&1; then
	ok "dpkg-source -b: spillway_$VERSION.dsc"
else
	sed 's/^/#   /' "$WORK/source.log"
	notok "dpkg-source -b failed"
fi
DSC=$(ls "$WORK"/srcpkg/spillway_*.dsc 2>/dev/null)
echo "# building from $SOURCE in $SRC"
if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	tail -n 60 "$WORK/build.log"
	die "dpkg-buildpackage -us -uc -b failed (last lines above)"
fi
grep -E "^ *[0-9]+/[0-9]+ .*(OK|FAIL|SKIP|TIMEOUT)|^Ok:|^Fail:|^Skipped:" "$WORK/build.log" | sed 's/^/#   /' | tail -n 8
mark "dpkg-buildpackage (with unit tests)"

CHANGES=$(ls "$WORK"/src/spillway_*.changes)
DEBS=$(ls "$WORK"/src/*.deb)
echo "# packages and installed sizes:"
for d in $DEBS; do
	printf '#   %-48s %6s KiB installed, %5s KiB .deb\n' "$(basename "$d")" \
		"$(dpkg-deb -f "$d" Installed-Size)" "$(du -k "$d" | cut -f1)"
done
for p in spillway spillway-plugin-webhook spillway-plugin-mysql spillway-plugin-nftables libspillway-backend-dev; do
	ls "$WORK"/src/${p}_*.deb >/dev/null 2>&1 && ok "built $p" || notok "no $p package"
done

# ---------------------------------------------------------------- 2. lintian
lintian --version | sed 's/^/# /'
# as an unprivileged user, as lintian wants (it unpacks what it checks)
mkdir -p "$WORK/lintian-home"
chown nobody "$WORK/lintian-home"
runuser -u nobody -- env HOME="$WORK/lintian-home" \
	lintian --info --display-level '>=pedantic' --show-overrides "$CHANGES" $DSC >"$WORK/lintian.log" 2>&1
echo "# lintian output:"
sed 's/^/#   /' "$WORK/lintian.log"
[ -s "$WORK/lintian.log" ] || echo "#   (nothing)"
if grep -qE '^[EW]: ' "$WORK/lintian.log"; then
	notok "lintian reports errors or warnings"
else
	ok "lintian: no errors, no warnings"
fi
mark "lintian"

# ---------------------------------------------------------------- 3. the container root
# This machine's own mirror, from apt (so no address is written here).
mirror() {
	apt-cache policy 2>/dev/null | awk -v s="$CODENAME/main" '$3 == s && $2 ~ /^https?:/ { print $2; exit }'
}
CACHE_ROOT=$CACHE_DIR/$CODENAME-minbase
STAMP="$CODENAME minbase include=$ROOT_INCLUDE"
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
flock 9
if [ ! -f "$CACHE_ROOT/.complete" ] || [ "$(cat "$CACHE_ROOT/.complete")" != "$STAMP" ]; then
	command -v debootstrap >/dev/null || skip "debootstrap is not installed and $CACHE_ROOT is not cached (tools/install-deps --test)"
	MIRROR=$(mirror)
	[ -n "$MIRROR" ] || skip "no $CODENAME/main source in apt's configuration to debootstrap from"
	echo "# creating the cached container root $CACHE_ROOT from $MIRROR (once; a few minutes)"
	rm -rf --one-file-system "$CACHE_ROOT.new" "$CACHE_ROOT"
	if ! debootstrap --variant=minbase --include="$ROOT_INCLUDE" "$CODENAME" "$CACHE_ROOT.new/root" "$MIRROR" \
		>"$WORK/debootstrap.log" 2>&1; then
		tail -n 30 "$WORK/debootstrap.log"
		rm -rf --one-file-system "$CACHE_ROOT.new"
		die "debootstrap failed"
	fi
	rm -f "$CACHE_ROOT.new/root/var/cache/apt/archives/"*.deb
	echo "$STAMP" >"$CACHE_ROOT.new/.complete"
	mv "$CACHE_ROOT.new" "$CACHE_ROOT"
	mark "debootstrap (cached for the next runs)"
fi
flock -u 9

# A throw-away writable root: overlayfs over the cached one (a copy if the
# kernel refuses the overlay).
MERGED=$WORK/root
mkdir -p "$MERGED" "$WORK/upper" "$WORK/ovlwork"
if ! mount -t overlay overlay -o "lowerdir=$CACHE_ROOT/root,upperdir=$WORK/upper,workdir=$WORK/ovlwork" "$MERGED" 2>/dev/null; then
	echo "# overlayfs unavailable: copying the cached root"
	cp -a "$CACHE_ROOT/root/." "$MERGED/"
fi
# A machine-id of its own: not a first boot (which would preset-enable every
# unit), and not the cached root's, so parallel runs do not share journals.
systemd-id128 new >"$MERGED/etc/machine-id"
mkdir -p "$WORK/debs"
cp $DEBS "$SRC/debian/tests/smoke" "$WORK/debs/"
chmod -R a+rX "$WORK/debs"
mark "container root (overlay)"

# ---------------------------------------------------------------- 4. boot
LOG=$WORK/console.log
setsid systemd-nspawn -D "$MERGED" -b -M "$NAME" --register=no --keep-unit --console=read-only \
	--bind-ro="$WORK/debs:/srv/debs" systemd.firstboot=off >"$LOG" 2>&1 </dev/null &
NSPAWN_PID=$!
# The container's PID 1 is nspawn's child named systemd (nspawn forks a
# short-lived helper first: waiting for the name avoids catching that one).
for _ in $(seq 1 200); do
	LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -1 || true)
	[ -n "$LEADER" ] && break
	kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$LOG"; die "systemd-nspawn exited"; }
	sleep 0.05
done
[ -n "$LEADER" ] || die "no container PID 1"
# run a command inside the container (in its PID 1's working folder, /), with a
# clean environment
IN=(nsenter -t "$LEADER" -a -w env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
st=""
for _ in $(seq 1 300); do
	st=$("${IN[@]}" systemctl is-system-running 2>/dev/null || true)
	case "$st" in running | degraded) break ;; esac
	kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$LOG"; die "the container died while booting"; }
	sleep 0.1
done
case "$st" in
running | degraded) ok "container booted with systemd as PID 1 (is-system-running: $st)" ;;
*) tail -n 30 "$LOG"; die "container boot state '$st'" ;;
esac
[ "$st" = degraded ] && "${IN[@]}" systemctl --failed --no-legend | sed 's/^/#   failed unit: /'
mark "boot"

in_sh() { "${IN[@]}" sh -c "$1"; }
state() { "${IN[@]}" systemctl is-active "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- 5. install
INSTALL_DEBS="/srv/debs/spillway_*.deb /srv/debs/spillway-plugin-webhook_*.deb"
INSTALL_DEBS+=" /srv/debs/spillway-plugin-mysql_*.deb /srv/debs/libspillway-backend-dev_*.deb"
if in_sh "apt-get install -y $INSTALL_DEBS" >"$WORK/install.log" 2>&1; then
	ok "apt-get install of the four packages"
else
	sed 's/^/#   /' "$WORK/install.log" | tail -n 40
	die "apt-get install failed"
fi
grep -iE "warning|error" "$WORK/install.log" | grep -v "^W: Download is performed unsandboxed" | sed 's/^/#   install: /'
mark "apt-get install"

# ---------------------------------------------------------------- 6. smoke test (debian/tests/smoke)
echo "# debian/tests/smoke:"
if "${IN[@]}" /srv/debs/smoke; then
	ok "debian/tests/smoke (the autopkgtest) passed"
else
	notok "debian/tests/smoke (the autopkgtest) failed"
fi
mark "smoke test"

# ---------------------------------------------------------------- 7. a plugin built against the -dev package
# The plugin author's guide (README.md, identical to spillway-backend(3)'s
# example) built on the host against the *packaged* header and .pc, installed
# where the .pc says, and loaded by the installed daemon on reload. It stays
# through the upgrade below, like any third-party plugin would.
DEVROOT=$WORK/devroot
dpkg-deb -x "$WORK"/src/libspillway-backend-dev_*.deb "$DEVROOT"
sed -n '/<!-- plugin-guide:begin -->/,/<!-- plugin-guide:end -->/p' "$SRC/README.md" | sed '1,2d;$d' | sed '$d' >"$WORK/hello.c"
PCDIR=$(dirname "$(find "$DEVROOT" -name spillway-backend.pc)")
PLUGINDIR=$(PKG_CONFIG_PATH=$PCDIR pkg-config --variable=plugindir spillway-backend)
if cflags=$(PKG_CONFIG_PATH=$PCDIR PKG_CONFIG_SYSROOT_DIR=$DEVROOT pkg-config --cflags spillway-backend) &&
	cc -O2 -fPIC -shared -fvisibility=hidden -Wl,-z,noexecstack -Wall -Werror $cflags -o "$WORK/hello.so" "$WORK/hello.c" >"$WORK/hello.log" 2>&1; then
	ok "the guide's plugin builds against libspillway-backend-dev (pkg-config --cflags: $cflags)"
else
	sed 's/^/#   /' "$WORK/hello.log"
	notok "the guide's plugin does not build against libspillway-backend-dev"
fi
install -o root -g root -m 0644 "$WORK/hello.so" "$MERGED$PLUGINDIR/hello.so"
printf 'name: hello\npath: hello\nconfig:\n  greeting: hi\n' >"$MERGED/etc/spillway/plugins/backend/hello.yaml"
if "${IN[@]}" systemctl reload spillway.service &&
	in_sh 'journalctl --sync; journalctl -u spillway --no-pager SPILLWAY_BACKEND=hello' | grep -q "plugin hello"; then
	ok "installed in $PLUGINDIR (the .pc's plugindir), it loads on systemctl reload"
else
	notok "the guide's plugin did not load (journalctl -u spillway SPILLWAY_BACKEND=hello)"
	in_sh 'journalctl -u spillway --no-pager -n 15' | sed 's/^/#   /'
fi
mark "plugin from the -dev package"

# ---------------------------------------------------------------- 7b. the nftables backend and its drop-in
# Its libraries (libnftables1 ...) are not in the cached root: apt fetches
# them from the root's mirror. The container shares the host's network
# namespace, where nspawn keeps no CAP_NET_ADMIN: this checks the package
# and the drop-in it ships; tests/system/test_nftables_systemd.py runs the
# backend under systemd in a network namespace of its own.
if in_sh "apt-get install -y /srv/debs/spillway-plugin-nftables_*.deb" >"$WORK/nft-install.log" 2>&1; then
	ok "apt-get install spillway-plugin-nftables"
else
	sed 's/^/#   /' "$WORK/nft-install.log" | tail -n 20
	notok "apt-get install spillway-plugin-nftables failed"
fi
"${IN[@]}" systemctl daemon-reload
NFT_DROPIN=$(in_sh 'ls /lib/systemd/system/spillway.service.d/nftables.conf /usr/lib/systemd/system/spillway.service.d/nftables.conf 2>/dev/null' | head -n 1)
if [ -n "$NFT_DROPIN" ] && "${IN[@]}" systemctl show -p DropInPaths --value spillway.service | grep -q nftables.conf; then
	ok "the drop-in $NFT_DROPIN applies to spillway.service"
else
	notok "the nftables drop-in is not installed or not applied"
fi
nft_caps=$("${IN[@]}" systemctl show -p AmbientCapabilities -p CapabilityBoundingSet -p PrivateUsers --value spillway.service | tr '\n' ' ')
if echo "$nft_caps" | grep -qi "cap_net_admin.*cap_net_admin.*no"; then
	ok "with it the service gets exactly CAP_NET_ADMIN, PrivateUsers=no ($nft_caps)"
else
	notok "unexpected capabilities with the nftables drop-in: $nft_caps"
fi
nft_owner=$(in_sh "stat -c '%U %a' $PLUGINDIR/nftables.so" 2>/dev/null)
if [ "$nft_owner" = "root 644" ]; then
	ok "$PLUGINDIR/nftables.so installed, root-owned, mode 644 (the loader's check)"
else
	notok "nftables.so missing or not root-owned 0644: '$nft_owner'"
fi
nft_exposure=$(in_sh 'systemd-analyze security --no-pager spillway.service' 2>/dev/null | sed -n 's/.*Overall exposure level for spillway.service: //p')
echo "# systemd-analyze security spillway.service with the nftables drop-in: ${nft_exposure:-?}"
mark "nftables package and drop-in"

# ---------------------------------------------------------------- 8. upgrade to the same version
sock_since=$("${IN[@]}" systemctl show -p ActiveEnterTimestampMonotonic --value spillway.socket)
db_before=$(in_sh 'ls /var/lib/spillway/spillway.db' 2>/dev/null)
pid_before=$("${IN[@]}" systemctl show -p MainPID --value spillway.service)
if in_sh "dpkg -i $INSTALL_DEBS" >"$WORK/reinstall.log" 2>&1; then
	ok "dpkg -i of the same version again (upgrade path) succeeds"
else
	sed 's/^/#   /' "$WORK/reinstall.log" | tail -n 30
	notok "dpkg -i of the same version failed"
fi
in_sh 'dpkg --audit' >"$WORK/audit.log" 2>&1
[ ! -s "$WORK/audit.log" ] && ok "dpkg --audit: nothing half-installed or half-configured" ||
	{ notok "dpkg --audit complains"; sed 's/^/#   /' "$WORK/audit.log"; }
[ "$(state spillway.socket)" = active ] && [ "$(state spillway-admin.socket)" = active ] &&
	ok "the sockets are still active after the upgrade" ||
	notok "after the upgrade: spillway.socket $(state spillway.socket), spillway-admin.socket $(state spillway-admin.socket)"
[ "$("${IN[@]}" systemctl show -p ActiveEnterTimestampMonotonic --value spillway.socket)" = "$sock_since" ] &&
	ok "spillway.socket was not restarted by the upgrade (producers are never refused)" ||
	notok "spillway.socket was restarted by the upgrade"
pid_after=$("${IN[@]}" systemctl show -p MainPID --value spillway.service)
[ "$(state spillway.service)" = active ] && [ "$pid_after" != "$pid_before" ] && [ "$pid_after" != 0 ] &&
	ok "the running service was restarted by the upgrade (MainPID $pid_before -> $pid_after)" ||
	notok "after the upgrade spillway.service is $(state spillway.service), MainPID $pid_before -> $pid_after"
raw=$("${IN[@]}" spillwayctl -o raw ban list 2>&1)
printf '%s\n' "$raw" | sed 's/^/#   /'
printf '%s\n' "$raw" | grep -q ",192.0.2.7,test," && printf '%s\n' "$raw" | grep -q ",198.51.100.23,spillway/package-test," &&
	ok "the ban database survived the upgrade (both bans listed)" || notok "bans lost across the upgrade"
[ -n "$db_before" ] && ok "the database file existed before the upgrade (/var/lib/spillway/spillway.db)" ||
	notok "no /var/lib/spillway/spillway.db before the upgrade"
in_sh 'ls /etc/spillway/*.dpkg-* /etc/spillway/plugins/backend/*.dpkg-* 2>/dev/null' | grep -q . &&
	notok "conffile leftovers (.dpkg-*) after re-installing unchanged conffiles" ||
	ok "no conffile prompts or .dpkg-* leftovers on re-install"
mark "upgrade (same version)"

# ---------------------------------------------------------------- 9. remove
if in_sh 'apt-get remove -y spillway-plugin-webhook spillway-plugin-mysql spillway-plugin-nftables libspillway-backend-dev spillway' >"$WORK/remove.log" 2>&1; then
	ok "apt-get remove"
else
	sed 's/^/#   /' "$WORK/remove.log" | tail -n 30
	notok "apt-get remove failed"
fi
running=""
for u in spillway.service spillway.socket spillway-admin.socket; do
	s=$(state $u)
	[ "$s" = active ] || [ "$s" = activating ] || [ "$s" = reloading ] && running+=" $u($s)"
done
# (from the host: minbase has no procps; the container's processes are ours too)
pgrep --ns "$LEADER" --nslist pid -x spillwayd >/dev/null && running+=" spillwayd-process"
in_sh 'test -e /run/spillway/ingest.sock || test -e /run/spillway/admin.sock' && running+=" sockets-in-/run/spillway"
[ -z "$running" ] && ok "after remove nothing is left running or listening" || notok "left running after remove:$running"
in_sh 'test -f /var/lib/spillway/spillway.db && test -f /etc/spillway/spillway.yaml' &&
	ok "after remove the configuration and the ban database are kept" ||
	notok "remove deleted configuration or state"
dpkg_state=$(in_sh "dpkg-query -W -f='\${db:Status-Abbrev}' spillway" 2>/dev/null)
[ "${dpkg_state% }" = rc ] && ok "dpkg state after remove: rc (config-files)" || notok "dpkg state after remove: '$dpkg_state'"
mark "remove"

# ---------------------------------------------------------------- 10. purge
# (the plugin and -dev packages have no conffiles: remove already took them)
if in_sh 'apt-get purge -y spillway' >"$WORK/purge.log" 2>&1; then
	ok "apt-get purge"
else
	sed 's/^/#   /' "$WORK/purge.log" | tail -n 30
	notok "apt-get purge failed"
fi
left=$(in_sh 'ls -d /etc/spillway /var/lib/spillway /run/spillway /etc/systemd/system/*/spillway* /lib/systemd/system/spillway* /usr/lib/systemd/system/spillway* 2>/dev/null')
[ -z "$left" ] && ok "after purge no configuration, state, unit or enablement symlink is left" ||
	notok "left after purge: $(echo $left)"
in_sh 'dpkg-query -W spillway' >/dev/null 2>&1 && notok "dpkg still knows spillway after purge" ||
	ok "dpkg no longer knows the package"
rm -f "$MERGED$PLUGINDIR/hello.so"
mark "purge"

# ---------------------------------------------------------------- 11. shutdown
"${IN[@]}" systemctl poweroff >/dev/null 2>&1
for _ in $(seq 1 150); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$NSPAWN_PID" 2>/dev/null; then
	notok "the container did not power off"
else
	NSPAWN_PID=""
	ok "container powered off"
fi
mark "poweroff"

echo "# timings:"
printf '%s' "$TIMES"
printf '  %-44s %4ds\n' TOTAL $(($(date +%s) - T0))
exit $failed
