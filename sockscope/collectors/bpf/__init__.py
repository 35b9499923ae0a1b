"""Reading socket flags and bind buckets from the kernel with BPF iterators, in pure Python.

  btf.py             the kernel's BTF: type ids, member offsets, enum values by name
  syscall.py         bpf(2) through ctypes (load, link, iterator, pin)
  asm.py             a small eBPF assembler (bytes, labels)
  programs.py        the TCP and UDP iterator programs generated for the running kernel
  iterators.py       load once, read per refresh (or read links pinned by `sockscope bpf pin`)
  kernel_options.py  the join to a sock_diag snapshot by cookie (option source "kernel")
"""
