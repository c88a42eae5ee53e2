"""A seccomp filter for sandboxed programs, compiled to classic BPF here (no libseccomp needed).

The run child installs it (``PR_SET_SECCOMP``, after ``no_new_privs``) as the last step before the program,
so it holds for the program and everything it starts, in every backend. Denied with ``EPERM``: tracing and
reading other processes' memory (``ptrace``, ``process_vm_readv/writev``, ``kcmp``, ``pidfd_getfd``), kernel
keyrings (``add_key``, ``request_key``, ``keyctl``), namespace creation and entry (``unshare``, ``setns``,
``clone`` with any ``CLONE_NEW*`` flag; ``clone3`` gets ``ENOSYS`` so libc falls back to ``clone``), mounts and
root changes, ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring``, modules, kexec, reboot, swap, acct,
quotactl, syslog, host/domain name, ``iopl``/``ioperm``, file handles, POSIX message queues (``mq_open``: they
would outlive a run in a shared IPC namespace and cannot be listed without mounting mqueue). Calls from another
ABI (i386 through ``int 0x80``, x32) are denied too. Architectures: x86_64 (tested) and aarch64 (same list,
numbers from the generic table); elsewhere ``filter_program()`` returns None and runs have no filter.
"""

from __future__ import annotations

import platform
import struct

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
ALLOW, ERRNO = 0x7FFF0000, 0x00050000
EPERM, ENOSYS = 1, 38
CLONE_NEW_ANY = 0x7E020080  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME

# name: (x86_64, aarch64/generic)
DENIED = {
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271), "kcmp": (312, 272),
    "pidfd_getfd": (438, 438), "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "open_tree": (428, 428), "move_mount": (429, 429),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106), "kexec_load": (246, 104),
    "kexec_file_load": (320, 294), "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225),
    "acct": (163, 89), "quotactl": (179, 60), "syslog": (103, 116), "sethostname": (170, 161),
    "setdomainname": (171, 162), "open_by_handle_at": (304, 265), "name_to_handle_at": (303, 264),
    "vhangup": (153, 58), "mq_open": (240, 180), "iopl": (172, None), "ioperm": (173, None),
    "lookup_dcookie": (212, 18),
}
ARCHES = {"x86_64": (0, 0xC000003E, 56, 435), "aarch64": (1, 0xC00000B7, 220, 435)}  # column, audit arch, clone(3)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes | None:
    """The filter as ``struct sock_filter[]`` bytes for this machine's architecture, or None if unsupported."""
    arch = ARCHES.get(machine or platform.machine())
    if arch is None:
        return None
    column, audit_arch, clone, clone3 = arch
    numbers = sorted({nrs[column] for nrs in DENIED.values() if nrs[column] is not None})
    body = [("ld", 4), ("jne", audit_arch), ("ld", 0)]
    if column == 0:
        body.append(("jge", 0x40000000))  # the x32 ABI
    body += [("jeq_nosys", clone3), ("jeq_clone", clone)] + [("jeq", nr) for nr in numbers]
    # layout: body | n: ALLOW | n+1: load clone's flags | n+2: any CLONE_NEW* -> DENY | n+3: ALLOW | n+4: DENY |
    # n+5: ENOSYS
    n = len(body)
    clone_at, deny, nosys = n + 1, n + 4, n + 5
    targets = {"jne": deny, "jge": deny, "jeq_nosys": nosys, "jeq_clone": clone_at, "jeq": deny}
    out = []
    for i, (op, k) in enumerate(body):
        if op == "ld":
            out.append(_insn(_LD_ABS, k))
            continue
        hop = targets[op] - i - 1  # BPF jumps are relative to the next instruction
        code = _JGE if op == "jge" else _JEQ
        out.append(_insn(code, k, 0, hop) if op == "jne" else _insn(code, k, hop, 0))
    out.append(_insn(_RET, ALLOW))
    out.append(_insn(_LD_ABS, 16))  # seccomp_data.args[0], low 32 bits (little endian)
    out.append(_insn(_JSET, CLONE_NEW_ANY, 1, 0))  # a namespace flag: to DENY, else the ALLOW right after
    out.append(_insn(_RET, ALLOW))
    out.append(_insn(_RET, ERRNO | EPERM))
    out.append(_insn(_RET, ERRNO | ENOSYS))
    return b"".join(out)
