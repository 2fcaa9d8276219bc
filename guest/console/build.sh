#!/bin/sh
# Builds the console guest with the system gcc/binutils.
# Usage: guest/console/build.sh OUTDIR   -> OUTDIR/console-guest.elf (+ .map, .dis)
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
# no red zone (interrupt frames land on the interrupted stack), non-PIC:
# everything sits identity mapped at 16 MiB.
CFLAGS="-std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdinc
 -fno-pic -fno-pie -mno-red-zone -mcmodel=small -mgeneral-regs-only
 -fno-tree-loop-distribute-patterns -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables
 -fcf-protection=none"
LDFLAGS="-nostdlib -static -no-pie -Wl,-T,$src/linker.ld -Wl,--build-id=none
 -Wl,-z,max-page-size=0x1000 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments"

# shellcheck disable=SC2086
"$CC" $CFLAGS -c "$src/entry.S" -o "$out/entry.o"
# shellcheck disable=SC2086
"$CC" $CFLAGS -c "$src/console-guest.c" -o "$out/console-guest.o"
# shellcheck disable=SC2086
"$CC" $CFLAGS $LDFLAGS -Wl,-Map,"$out/console-guest.map" "$out/entry.o" "$out/console-guest.o" -o "$out/console-guest.elf"
objdump -d "$out/console-guest.elf" >"$out/console-guest.dis"
echo "$out/console-guest.elf"
