#!/bin/sh
# Builds typevisor's test guests with the system gcc/binutils.
# Usage: guest/build.sh OUTDIR   -> OUTDIR/test-guest.elf (+ .map, .dis)
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
src=$(cd "$(dirname "$0")" && pwd)
CC=${CC:-gcc}

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "$0: C compiler '$CC' not found (install gcc)" >&2
	exit 3
fi
mkdir -p "$out"

# Freestanding, no SSE (the 64-bit boot protocol does not promise CR4.OSFXSR),
# no red zone (exception frames land on the interrupted stack), non-PIC:
# everything sits identity mapped at 16 MiB, well inside -mcmodel=small.
CFLAGS="-std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdinc
 -fno-pic -fno-pie -mno-red-zone -mcmodel=small -mgeneral-regs-only
 -fno-tree-loop-distribute-patterns -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables
 -fcf-protection=none -fno-omit-frame-pointer"
LDFLAGS="-nostdlib -static -no-pie -Wl,-T,$src/linker.ld -Wl,--build-id=none
 -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments"

objs=""
for f in entry.S tg.c console.c acpi.c smp.c virtio-blk.c test-guest.c; do
	o="$out/$(basename "$f" | sed 's/\.[cS]$/.o/')"
	# shellcheck disable=SC2086
	"$CC" $CFLAGS -I"$src" -c "$src/$f" -o "$o"
	objs="$objs $o"
done
# shellcheck disable=SC2086
"$CC" $CFLAGS $LDFLAGS -Wl,-Map,"$out/test-guest.map" $objs -o "$out/test-guest.elf"
objdump -d "$out/test-guest.elf" >"$out/test-guest.dis"
echo "$out/test-guest.elf"
