#!/usr/bin/env python3
"""Which crates make a Lambda bootstrap big: sums the sizes of the code and data symbols of an
unstripped release binary by the crate that defines them (like `cargo bloat --crates`, from
`nm`), and prints the file's section sizes.

    python3 infra/bench/crate_sizes.py target/x86_64-unknown-linux-gnu/release/warehouse-api

Symbols are attributed by their demangled path's first segment (`aws_sdk_s3::...`, also inside
`<T as aws_smithy_types::...>` impls: the first crate named); C symbols of aws-lc (`aws_lc_*`),
and everything else without a Rust path, are grouped as shown.
"""

import collections
import os
import re
import subprocess
import sys

PATH = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)::")


def crate_of(name: str) -> str:
    if name.startswith(("aws_lc_", "AWS_LC", "aws_lc_0_")):
        return "aws-lc (C)"
    m = PATH.search(name)
    if m:
        c = m.group(1)
        return "std/core/alloc" if c in ("std", "core", "alloc", "hashbrown", "compiler_builtins") else c
    return "[C / unnamed]"


def main() -> None:
    binary = sys.argv[1]
    out = subprocess.run(
        ["nm", "-S", "--size-sort", "-C", binary], capture_output=True, text=True, check=True
    ).stdout
    sizes: collections.Counter = collections.Counter()
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 4 or parts[2].lower() not in "tdrb":
            continue
        sizes[crate_of(parts[3])] += int(parts[1], 16)
    total_file = os.path.getsize(binary)
    sec = subprocess.run(["size", "-A", binary], capture_output=True, text=True, check=True).stdout
    wanted = {".text", ".rodata", ".data.rel.ro", ".eh_frame", ".gcc_except_table", ".data", ".bss"}
    print(f"{binary}: {total_file / 1e6:.1f} MB on disk")
    for line in sec.splitlines():
        f = line.split()
        if f and f[0] in wanted:
            print(f"  section {f[0]:<20} {int(f[1]) / 1e6:6.2f} MB")
    symbols = sum(sizes.values())
    print(f"  symbols {symbols / 1e6:.2f} MB, by crate:")
    for crate, size in sizes.most_common(25):
        print(f"  {size / 1e6:7.2f} MB {100 * size / symbols:5.1f}%  {crate}")


if __name__ == "__main__":
    main()
