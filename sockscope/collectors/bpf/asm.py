"""A small eBPF assembler: instructions as bytes, with labels for forward jumps.

Just what sockscope's programs need (loads, stores, moves, conditional jumps, helper
calls, map references, atomic adds). Encoding per include/uapi/linux/bpf.h and
Documentation/bpf/standardization: 8 bytes per instruction: opcode, dst:4|src:4, signed 16-bit offset, signed 32-bit immediate.
Reusable by any program generator (e.g. a tracepoint program).
"""

from __future__ import annotations

import struct

# classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_OF = {1: B, 2: H, 4: W, 8: DW}
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
PSEUDO_MAP_FD = 1  # src_reg of a 64-bit immediate load: the immediate is a map's fd
# ALU ops
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0)
K, X = 0x00, 0x08
# JMP ops
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0)

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

_INSN = struct.Struct("<BBhi")


class AsmError(Exception):
    pass


class Asm:
    def __init__(self) -> None:
        self._insns: list[tuple[int, int, int, int, int, str | None]] = []  # op, dst, src, off, imm, label
        self._labels: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._insns)

    def _emit(self, op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0, target: str | None = None) -> Asm:
        self._insns.append((op, dst, src, off, imm, target))
        return self

    def label(self, name: str) -> Asm:
        if name in self._labels:
            raise AsmError(f"label {name} defined twice")
        self._labels[name] = len(self._insns)
        return self

    # moves and arithmetic (64-bit)
    def mov(self, dst: int, src: int) -> Asm:
        return self._emit(ALU64 | MOV | X, dst, src)

    def mov_imm(self, dst: int, imm: int) -> Asm:
        return self._emit(ALU64 | MOV | K, dst, 0, 0, imm)

    def add_imm(self, dst: int, imm: int) -> Asm:
        return self._emit(ALU64 | ADD | K, dst, 0, 0, imm)

    def alu_imm(self, op: int, dst: int, imm: int) -> Asm:
        return self._emit(ALU64 | op | K, dst, 0, 0, imm)

    def alu(self, op: int, dst: int, src: int) -> Asm:
        return self._emit(ALU64 | op | X, dst, src)

    def ld_map_fd(self, dst: int, map_fd: int) -> Asm:
        """dst = the map behind `map_fd` (a 64-bit immediate load: two instruction slots;
        the kernel replaces the fd by the map's address when it loads the program)."""
        self._emit(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, map_fd)
        return self._emit(0, 0, 0, 0, 0)

    # memory
    def ldx(self, size: int, dst: int, src: int, off: int) -> Asm:
        """dst = *(size *)(src + off); size in bytes."""
        return self._emit(LDX | MEM | SIZE_OF[size], dst, src, off)

    def stx(self, size: int, dst: int, off: int, src: int) -> Asm:
        """*(size *)(dst + off) = src."""
        return self._emit(STX | MEM | SIZE_OF[size], dst, src, off)

    def atomic_add(self, size: int, dst: int, off: int, src: int) -> Asm:
        """*(size *)(dst + off) += src, atomically (BPF_ATOMIC with BPF_ADD; 4 or 8 bytes)."""
        if size not in (4, 8):
            raise AsmError("atomic add is 4 or 8 bytes wide")
        return self._emit(STX | ATOMIC | SIZE_OF[size], dst, src, off, ADD)

    def st_imm(self, size: int, dst: int, off: int, imm: int) -> Asm:
        return self._emit(ST | MEM | SIZE_OF[size], dst, 0, off, imm)

    # control flow
    def jmp_imm(self, op: int, dst: int, imm: int, target: str) -> Asm:
        return self._emit(JMP | op | K, dst, 0, 0, imm, target)

    def jeq_imm(self, dst: int, imm: int, target: str) -> Asm:
        return self.jmp_imm(JEQ, dst, imm, target)

    def ja(self, target: str) -> Asm:
        return self._emit(JMP | JA, 0, 0, 0, 0, target)

    def call(self, helper: int) -> Asm:
        return self._emit(JMP | CALL, 0, 0, 0, helper)

    def exit(self) -> Asm:
        return self._emit(JMP | EXIT)

    def assemble(self) -> bytes:
        out = bytearray()
        for i, (op, dst, src, off, imm, target) in enumerate(self._insns):
            if target is not None:
                if target not in self._labels:
                    raise AsmError(f"undefined label {target}")
                off = self._labels[target] - (i + 1)
                if not -32768 <= off <= 32767:
                    raise AsmError(f"jump to {target} too far")
            out += _INSN.pack(op, (src << 4) | dst, off, imm)
        return bytes(out)
