"""Prelude for `apply_megatron_fork.py --prelude`: FlagScale's Megatron-LM-FL on a CPU.

Its rotary embedding asks its platform layer (``cur_platform.current_device()``, bound when the module is
imported) for a device where upstream asks ``torch.cuda``; on a machine without CUDA no platform answers the CPU.
The CUDA platform with the CPU as its device is put in place first (``seamfix.runtime.megatron.cpu_mode`` does
the same for ``torch.cuda`` itself)."""

import torch
from megatron.plugin.platform import platform_manager
from megatron.plugin.platform.platform_cuda import PlatformCUDA


class CpuPlatform(PlatformCUDA):
    def current_device(self):
        return torch.device("cpu")

    def current_device_name(self):
        return "cpu"


platform_manager.cur_platform = CpuPlatform()
