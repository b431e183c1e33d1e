"""IPVS director in a small qemu VM, for hosts whose kernel has no IPVS.

The VM boots the distribution's cloud kernel with an initramfs holding busybox-static, ipvsadm,
nft and the kernel modules (see initramfs.py). All of it comes from Debian packages fetched with
``apt-get download`` and unpacked with ``dpkg -x`` (nothing installed, no maintainer scripts run),
not from the host's own binaries: the kernel modules must match the downloaded kernel anyway, the
package versions give a cache key, and the result does not depend on what happens to be installed
on the host. The VM has no network but its two NICs, tap devices inside the lab's switch
namespace enslaved to the VIP-side and RS-side bridges.

Channels: ttyS0 is the console (file ``console.log``, carries the ready marker); ttyS1 is a unix
socket on the host, with a shell loop in the VM behind it: ``VmHandle.run``.

Modules: assets (kernel + initramfs cache), spec (IpvsVmSpec), process (qemu's command line,
state file, stopping it), control (VmHandle and its control channel), lifecycle (start, attach,
tear down).
"""

from dr_inspect.lab.vm.assets import (VmAssets, apt_state_signature, asset_key, default_cache_dir,
                                      ensure_vm_assets, parse_apt_depends,
                                      parse_apt_depends_targets, parse_apt_policy,
                                      resolve_vm_packages)
from dr_inspect.lab.vm.control import CommandResult, VmHandle
from dr_inspect.lab.vm.lifecycle import attach_vm, start_ipvs_vm, stop_vm_from_state
from dr_inspect.lab.vm.process import kvm_usable, qemu_argv, stop_vm_by_pid
from dr_inspect.lab.vm.spec import IpvsVmSpec, tap_names

__all__ = ["CommandResult", "IpvsVmSpec", "VmAssets", "VmHandle", "apt_state_signature",
           "asset_key", "attach_vm", "default_cache_dir", "ensure_vm_assets", "kvm_usable",
           "parse_apt_depends", "parse_apt_depends_targets", "parse_apt_policy", "qemu_argv",
           "resolve_vm_packages", "start_ipvs_vm", "stop_vm_by_pid", "stop_vm_from_state",
           "tap_names"]
