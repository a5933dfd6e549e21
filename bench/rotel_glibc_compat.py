#!/usr/bin/env python3
"""Makes the rotel-agent binary from the `rotel` wheel run on glibc < 2.38.

The 0.0.1a10 wheel is tagged manylinux_2_34 but its binary needs two
GLIBC_2.38 symbols, `__isoc23_sscanf` and `__isoc23_strtol` (the C23
variants, which differ from the classic ones only in accepting a `0b`
prefix). Debian 12 ships glibc 2.36, so the binary fails to load. This
writes a copy whose two imports point at the classic `sscanf`/`strtol`
(GLIBC_2.2.5): the dynamic-symbol names are re-pointed at the suffix of the
same strings, and the GLIBC_2.38 version requirement is renamed to
GLIBC_2.2.5. Nothing else changes.

usage: rotel_glibc_compat.py IN OUT
"""
import shutil
import struct
import sys

from elftools.elf.elffile import ELFFile


def main(src, dst):
    shutil.copyfile(src, dst)
    with open(src, "rb") as f:
        elf = ELFFile(f)
        dynsym = elf.get_section_by_name(".dynsym")
        dynstr = elf.get_section_by_name(".dynstr")
        versym = elf.get_section_by_name(".gnu.version")
        verneed = elf.get_section_by_name(".gnu.version_r")
        # Find the GLIBC_2.38 and libc GLIBC_2.2.5 requirement entries.
        need_off = verneed["sh_offset"]
        data = verneed.data()
        pos = 0
        target = donor = None
        while True:
            vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, pos)
            file = dynstr.get_string(vn_file)
            apos = pos + vn_aux
            for _ in range(vn_cnt):
                vna_hash, vna_flags, vna_other, vna_name, vna_next = struct.unpack_from("<IHHII", data, apos)
                name = dynstr.get_string(vna_name)
                if file == "libc.so.6" and name == "GLIBC_2.38":
                    target = (apos, vna_other)
                if file == "libc.so.6" and name == "GLIBC_2.2.5":
                    donor = (vna_hash, vna_name, vna_other)
                apos += vna_next
            if vn_next == 0:
                break
            pos += vn_next
        if target is None:
            print("no GLIBC_2.38 requirement; copied unchanged")
            return
        assert donor is not None, "no libc GLIBC_2.2.5 requirement to borrow"
        patches = []
        # Rename the requirement (keep its index so .gnu.version stays valid).
        patches.append((need_off + target[0], struct.pack("<I", donor[0])))
        patches.append((need_off + target[0] + 8, struct.pack("<I", donor[1])))
        # Re-point the symbols that used it.
        vs = versym.data()
        ent = dynsym["sh_entsize"]
        for i, sym in enumerate(dynsym.iter_symbols()):
            ver = struct.unpack_from("<H", vs, 2 * i)[0] & 0x7FFF
            if ver != target[1]:
                continue
            assert sym.name.startswith("__isoc23_"), sym.name
            off = dynsym["sh_offset"] + i * ent
            patches.append((off, struct.pack("<I", sym["st_name"] + len("__isoc23_"))))
            patches.append((versym["sh_offset"] + 2 * i, struct.pack("<H", donor[2])))
            print(f"{sym.name} -> {sym.name[len('__isoc23_'):]}@GLIBC_2.2.5")
    with open(dst, "r+b") as f:
        for off, b in patches:
            f.seek(off)
            f.write(b)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
