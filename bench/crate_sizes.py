#!/usr/bin/env python3
"""What each crate adds to the wsgate binary: the sizes of its functions and data, from `nm`.

usage: bench/crate_sizes.py [UNSTRIPPED_BINARY]
Build one with symbols first: CARGO_PROFILE_RELEASE_STRIP=false cargo build --release
(the default binary path is then target/release/wsgate). Symbols are grouped by the first
segment of their demangled path. Symbols without a Rust path are C and assembly, which here is
ring's (its ring_core_* functions, their static helpers and tables such as the P-256
precomputation) apart from a few hundred bytes of C start-up; they count as ring. Generic code
is counted under the crate it was instantiated from, as the demangled name says.
"""
import collections
import re
import subprocess
import sys

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/wsgate"
out = subprocess.run(
    ["nm", "--size-sort", "-S", "-C", "--radix=d", binary],
    check=True, capture_output=True, text=True,
).stdout

sizes = collections.Counter()
for line in out.splitlines():
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    size, name = int(parts[1]), parts[3].strip()
    # `<T as Trait>::f` and `impl Trait for T` belong to the crate of T.
    name = re.sub(r"^(<|impl |dyn |&|\*const |\*mut )+", "", name)
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        crate = m.group(1)
    else:
        crate = "ring"
    sizes[crate] += size

total = sum(sizes.values())
print(f"{'bytes':>9}  {'share':>5}  crate")
for crate, size in sizes.most_common():
    if size < 1024:
        continue
    print(f"{size:>9}  {100 * size / total:4.1f}%  {crate}")
print(f"{total:>9}  100.0%  (symbols in all)")
