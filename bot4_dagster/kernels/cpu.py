"""Host CPU facts, and whether our compiled kernels really use AVX-512 (``%zmm``) registers.

Why: a benchmark number means little without the machine under it, and "the CPU has AVX-512"
is not "the kernels use it" (LLVM prefers 256-bit vectors on some CPUs, e.g. Zen 4).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
from typing import Any

from ._jit import NUMBA_ENABLED

SIMD_FLAGS: tuple[str, ...] = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd",
    "avx512ifma", "avx512vbmi", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
    "asimd", "sve", "sve2",
)
_REGISTER_ISA = {"zmm": "AVX-512", "ymm": "AVX/AVX2", "xmm": "SSE"}


def _proc_cpuinfo() -> tuple[str | None, set[str]]:
    """CPU model name and flag set from /proc/cpuinfo (Linux); empty elsewhere."""
    name: str | None = None
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name is None:
                    name = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
                if name is not None and flags:
                    break
    except OSError:
        pass
    return name, flags


def _usable_cores() -> int | None:
    """Cores this process may run on (affinity/cgroup cpusets), which can be < os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _numba_host() -> dict[str, Any]:
    """What LLVM (through numba) targets on this host, including env overrides."""
    from llvmlite import binding as ll
    from numba.core import config

    features = ll.get_host_cpu_features()
    enabled = sorted(k for k, on in features.items() if on)
    return {
        "numba_cpu_name": getattr(config, "CPU_NAME", None) or ll.get_host_cpu_name(),
        "llvm_host_cpu_name": ll.get_host_cpu_name(),
        "llvm_host_features_simd": [f for f in enabled if f.startswith(("avx", "fma", "sse"))],
        "numba_cpu_name_env": os.environ.get("NUMBA_CPU_NAME"),
        "numba_cpu_features_env": os.environ.get("NUMBA_CPU_FEATURES"),
    }


# Packed floating-point arithmetic (add/sub/mul/div/min/max/sqrt/FMA on ..pd/..ps): the
# instructions that do the kernel's work, unlike stack spills or register zeroing.
_PACKED_ARITH = re.compile(
    r"^\s*v(?:add|sub|mul|div|min|max|sqrt|fn?m(?:add|sub)\d{3})p[sd]\b[^\n]*?%(zmm|ymm|xmm)\d+",
    re.MULTILINE,
)


def vector_arith_counts(asm: str) -> dict[str, int]:
    """Packed float arithmetic instructions per x86 register class (zmm/ymm/xmm) in asm text."""
    counts = {"zmm": 0, "ymm": 0, "xmm": 0}
    for match in _PACKED_ARITH.finditer(asm):
        counts[match.group(1)] += 1
    return counts


def widest_vector_register(asm: str) -> str | None:
    """The widest register class used by packed float arithmetic: zmm, ymm, xmm or None."""
    counts = vector_arith_counts(asm)
    return next((reg for reg in ("zmm", "ymm", "xmm") if counts[reg]), None)


def kernel_asm() -> str:
    """Assembly of a real kernel (``pct_returns_python``) freshly compiled for float64 arrays.

    Compiled with ``cache=False`` because numba's ``inspect_asm`` is garbage for cached
    functions; called once so the float64 signature exists.
    """
    import numba
    import numpy as np

    from .returns import pct_returns_python

    fn = numba.njit(pct_returns_python, cache=False, nogil=True, error_model="numpy")
    close = np.linspace(100.0, 200.0, 1024)
    fn(close, np.empty_like(close))
    return "\n".join(fn.inspect_asm().values())


def _kernel_vector_facts() -> dict[str, Any]:
    if not NUMBA_ENABLED:
        return {
            "kernels_use_zmm": False,
            "kernel_vector_register": None,
            "kernel_vector_arith_counts": {},
            "kernel_vector_isa": None,
            "kernel_asm_note": "numba disabled (BOT4_DISABLE_NUMBA=1): kernels run as Python",
        }
    asm = kernel_asm()
    reg = widest_vector_register(asm)
    return {
        "kernels_use_zmm": reg == "zmm",
        "kernel_vector_register": reg,
        "kernel_vector_arith_counts": vector_arith_counts(asm),
        "kernel_vector_isa": _REGISTER_ISA.get(reg) if reg else None,
        "kernel_asm_note": "packed float arithmetic in pct_returns_python, njit(cache=False)",
    }


@functools.cache
def cpu_info() -> dict[str, Any]:
    """Host CPU facts as a JSON-ready dict (cached: compiling the probe kernel takes ~0.3 s)."""
    name, flags = _proc_cpuinfo()
    simd = [f for f in SIMD_FLAGS if f in flags]
    info: dict[str, Any] = {
        "cpu_name": name or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "simd_flags": simd,
        "avx512": "avx512f" in flags,
        "numba_enabled": NUMBA_ENABLED,
    }
    if NUMBA_ENABLED:
        info.update(_numba_host())
    else:
        info.update({
            "numba_cpu_name": None,
            "llvm_host_cpu_name": None,
            "llvm_host_features_simd": [],
            "numba_cpu_name_env": os.environ.get("NUMBA_CPU_NAME"),
            "numba_cpu_features_env": os.environ.get("NUMBA_CPU_FEATURES"),
        })
    info.update(_kernel_vector_facts())
    return info


def describe_cpu(info: dict[str, Any] | None = None) -> str:
    """One human-readable paragraph about the host and what the kernels compile to."""
    i = cpu_info() if info is None else info
    cores = f"{i['usable_cores']} usable of {i['logical_cores']} logical cores"
    isa = ", ".join(i["simd_flags"]) or "no SIMD flags reported"
    text = f"{i['cpu_name']} ({i['machine']}), {cores}; SIMD flags: {isa}. "
    if not i["numba_enabled"]:
        return text + "Numba is disabled (BOT4_DISABLE_NUMBA=1), so kernels run as plain Python."
    text += f"LLVM targets '{i['numba_cpu_name']}'"
    if i["numba_cpu_name_env"] or i["numba_cpu_features_env"]:
        text += (f" (NUMBA_CPU_NAME={i['numba_cpu_name_env']}, "
                 f"NUMBA_CPU_FEATURES={i['numba_cpu_features_env']})")
    reg = i["kernel_vector_register"]
    if reg is None:
        return text + "; the probe kernel compiled to scalar code (no vector registers)."
    text += f"; the probe kernel's widest registers are {reg} ({i['kernel_vector_isa']})"
    if i["avx512"] and not i["kernels_use_zmm"]:
        text += ": the CPU has AVX-512 but the kernels do not use 512-bit registers"
    return text + "."


if __name__ == "__main__":
    print(json.dumps(cpu_info(), indent=2))
