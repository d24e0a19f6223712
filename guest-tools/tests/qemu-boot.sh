#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# qemu-boot.sh ARCH KERNEL BUILD_DIR WORK_DIR [KEY=VALUE...] - boot one kmt job by hand.
#
# A stand-in for the harness, for testing guest-tools: packs images/initramfs.manifest (files
# from BUILD_DIR, the guest-tools O= of ARCH) into WORK_DIR/initramfs.cpio with cpio -H newc
# (staging tree in WORK_DIR/root; needs root for the device nodes), shares WORK_DIR/share over
# virtio-9p with tag kmt, boots KERNEL under QEMU TCG (2 vCPUs, 512 MB, -no-reboot) and waits for
# the KMT-STATUS sentinel. KEY=VALUE pairs become kmt.KEY=VALUE on the kernel command line
# (workload=, param=, out=, timeout=); an argument containing a dot is passed to the kernel as is
# (kmemtrace.enable=yes). Console: WORK_DIR/console.log. QEMU is killed after $KMT_BOOT_TIMEOUT
# seconds (default 600).
#
# Exit codes: 0 KMT-STATUS: ok, 1 KMT-STATUS: fail or no sentinel, 2 usage or setup error.
set -u

[ $# -ge 4 ] || { sed -n '4,16p' "$0" >&2; exit 2; }
ARCH=$1 KERNEL=$2 BUILD=$3 WORK=$4
shift 4
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MANIFEST=$SRC/images/initramfs.manifest

case $ARCH in
x86_64)
	QEMU=(qemu-system-x86_64 -accel tcg)
	CONSOLE=ttyS0
	NINEP=(-virtfs "local,path=$WORK/share,mount_tag=kmt,security_model=mapped-xattr,id=kmt")
	;;
arm64)
	QEMU=(qemu-system-aarch64 -M virt -cpu cortex-a57)
	CONSOLE=ttyAMA0
	NINEP=(-fsdev "local,id=kmt,path=$WORK/share,security_model=mapped-xattr"
		-device "virtio-9p-pci,fsdev=kmt,mount_tag=kmt")
	;;
ppc64)
	QEMU=(qemu-system-ppc64 -M pseries -cpu power8)
	CONSOLE=hvc0
	NINEP=(-fsdev "local,id=kmt,path=$WORK/share,security_model=mapped-xattr"
		-device "virtio-9p-pci,fsdev=kmt,mount_tag=kmt")
	;;
*) echo "qemu-boot: unknown ARCH $ARCH" >&2; exit 2 ;;
esac

rm -rf "$WORK/root" "$WORK/share"
mkdir -p "$WORK/root" "$WORK/share" || exit 2
# Stage the manifest's entries (format: images/README.md).
while read -r kind path a b _ d e f; do
	case $kind in
	'' | '#'*) continue ;;
	dir) mkdir -p "$WORK/root$path" && chmod "$a" "$WORK/root$path" ;;
	nod) mknod -m "$a" "$WORK/root$path" "$d" "$e" "$f" ;;
	file) install -m "$b" "$BUILD/$a" "$WORK/root$path" ;;
	slink) ln -s "$a" "$WORK/root$path" ;;
	*) echo "qemu-boot: $MANIFEST: unknown entry $kind" >&2; exit 2 ;;
	esac || { echo "qemu-boot: cannot stage $kind $path" >&2; exit 2; }
done < <(sed 's/#.*//' "$MANIFEST")
(cd "$WORK/root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) \
	>"$WORK/initramfs.cpio" || exit 2

CMDLINE="console=$CONSOLE panic=-1 oops=panic rdinit=/init"
for kv in "$@"; do
	case $kv in
	*.*=*) CMDLINE="$CMDLINE $kv" ;;
	*=*) CMDLINE="$CMDLINE kmt.$kv" ;;
	*) echo "qemu-boot: not KEY=VALUE: $kv" >&2; exit 2 ;;
	esac
done

CMD=("${QEMU[@]}" -nodefaults -no-reboot -nographic -serial stdio -smp 2 -m 512
	-kernel "$KERNEL" -initrd "$WORK/initramfs.cpio" -append "$CMDLINE" "${NINEP[@]}")
printf '%q ' "${CMD[@]}" >"$WORK/qemu.cmd"
echo >>"$WORK/qemu.cmd"
echo "qemu-boot: $(cat "$WORK/qemu.cmd")" >&2
START=$(date +%s.%N)
timeout -k 5 "${KMT_BOOT_TIMEOUT:-600}" "${CMD[@]}" </dev/null >"$WORK/console.log" 2>"$WORK/qemu.err"
QRC=$?
END=$(date +%s.%N)
SENTINEL=$(grep -a '^KMT-STATUS:' "$WORK/console.log" | tr -d '\r')
echo "qemu-boot: QEMU exit $QRC after $(echo "$END - $START" | bc) s; sentinels: $(grep -ac '^KMT-STATUS:' "$WORK/console.log")" >&2
echo "${SENTINEL:-no sentinel}"
[ "$SENTINEL" = "KMT-STATUS: ok" ]
